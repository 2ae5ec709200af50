//! Builds an image from the command line (the real CLI is `ferrotron image build`).
//!
//! `cargo run -p ferrotron-imagebuilder --example build_image -- STORE RECIPE AGENT`

use std::path::PathBuf;

use ferrotron_imagebuilder::{BuildEvent, BuildOptions, ImageStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, recipe, agent] = args.as_slice() else {
        return Err("usage: build_image STORE RECIPE AGENT".into());
    };
    let store = ImageStore::new(PathBuf::from(store));
    let start = std::time::Instant::now();
    let built = store.build(
        recipe.as_ref(),
        &BuildOptions::new(agent),
        &mut |ev| match ev {
            BuildEvent::Step { name, detail } => {
                println!(
                    "[{:6.1}s] {name:<9} {detail}",
                    start.elapsed().as_secs_f64()
                )
            }
            BuildEvent::Done {
                path,
                size_bytes,
                elapsed,
            } => println!(
                "built {} ({:.1} MiB) in {:.1}s",
                path.display(),
                size_bytes as f64 / 1048576.0,
                elapsed.as_secs_f64()
            ),
        },
    )?;
    println!("{}", serde_json::to_string(&built.manifest.boot)?);
    Ok(())
}
