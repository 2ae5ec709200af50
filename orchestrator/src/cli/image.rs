//! `ferrotron image build|import|list|prune|verify`.

use std::path::PathBuf;
use std::time::Instant;

use clap::Subcommand;
use ferrotron::exit::ExitStatus;
use ferrotron::settings::Settings;
use ferrotron_imagebuilder::import::ImportRequest;
use ferrotron_imagebuilder::{BuildEvent, BuildOptions, Firmware, ImageStore, Recipe};

use super::{CmdResult, Failure};

#[derive(Subcommand)]
pub enum ImageCommand {
    /// Build an image from a recipe and publish it as a new version.
    Build {
        /// The static guest agent baked into the image.
        #[arg(long, env = "FERROTRON_AGENT")]
        agent: PathBuf,
        /// Skip the build when the newest image of that name was built from
        /// the same recipe and agent.
        #[arg(long)]
        if_changed: bool,
        /// The recipe (e.g. images/tiny.yaml).
        recipe: PathBuf,
    },
    /// Add a distribution's cloud image (qcow2 or raw; booted from its own
    /// disk, configured by cloud-init) as a new version of NAME.
    Import {
        /// The image name (`fedora-cloud`).
        name: String,
        /// The disk image (`Fedora-Cloud-Base-….qcow2`).
        file: PathBuf,
        /// The user the job's key logs in as; anyone but root needs
        /// passwordless sudo, through which the agent runs as root.
        #[arg(long, default_value = "root")]
        user: String,
        /// The firmware its boot loader needs.
        #[arg(long, value_enum, default_value = "bios")]
        firmware: FirmwareArg,
        /// Memory of a job's VM (cloud-init wants more than `tiny`).
        #[arg(long, default_value_t = 1024)]
        memory: u32,
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// How long a cold boot (cloud-init's first boot) may take to SSH.
        #[arg(long, default_value_t = 600)]
        ssh_timeout: u32,
    },
    /// List images, newest version last.
    List,
    /// Remove all but the newest N versions of each image.
    Prune {
        #[arg(long)]
        keep: usize,
        /// Only this image.
        name: Option<String>,
    },
    /// Recheck an image's files against its manifest.
    Verify { reference: String },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FirmwareArg {
    Bios,
    Uefi,
}

pub fn main(settings: &Settings, cmd: ImageCommand) -> CmdResult {
    let store = ImageStore::new(settings.images_dir.clone());
    match cmd {
        ImageCommand::Build {
            agent,
            if_changed,
            recipe,
        } => build(&store, &agent, if_changed, &recipe),
        ImageCommand::Import {
            name,
            file,
            user,
            firmware,
            memory,
            vcpus,
            ssh_timeout,
        } => import(
            &store,
            &ImportRequest {
                name,
                file,
                user,
                firmware: match firmware {
                    FirmwareArg::Bios => Firmware::Bios,
                    FirmwareArg::Uefi => Firmware::Uefi,
                },
                memory_mib: memory,
                vcpus,
                ssh_timeout_secs: ssh_timeout,
            },
        ),
        ImageCommand::List => {
            let images = store.list().map_err(Failure::infra)?;
            if images.is_empty() {
                eprintln!(
                    "no images in {} (build one: ferrotron image build images/tiny.yaml)",
                    store.root().display()
                );
                return Ok(ExitStatus::Passed);
            }
            println!(
                "{:<12} {:<18} {:<22} {:>10}",
                "NAME", "VERSION", "CREATED", "SIZE"
            );
            for i in images {
                println!(
                    "{:<12} {:<18} {:<22} {:>7.1} MiB",
                    i.name,
                    i.version,
                    i.created,
                    i.size_bytes as f64 / 1048576.0
                );
            }
            Ok(ExitStatus::Passed)
        }
        ImageCommand::Prune { keep, name } => {
            let removed = store.prune(name.as_deref(), keep).map_err(Failure::infra)?;
            for i in &removed {
                println!("removed {}:{}", i.name, i.version);
            }
            println!("{} version(s) removed", removed.len());
            Ok(ExitStatus::Passed)
        }
        // A file that no longer matches is a failed check, not an error of
        // the command.
        ImageCommand::Verify { reference } => {
            let r = store
                .verify(&reference)
                .map_err(|e| Failure::new(ExitStatus::TaskFailed, e))?;
            println!("{}: all files match the manifest", r.reference());
            Ok(ExitStatus::Passed)
        }
    }
}

fn import(store: &ImageStore, req: &ImportRequest) -> CmdResult {
    let mut progress = |ev: BuildEvent| {
        if let BuildEvent::Step { name, detail } = ev {
            eprintln!("ferrotron: image {name:<8} {detail}");
        }
    };
    let imported = store.import(req, &mut progress).map_err(|e| {
        let status = if e.is_bad_input() {
            ExitStatus::BadInput
        } else {
            ExitStatus::Infrastructure
        };
        Failure::new(status, e)
    })?;
    eprintln!(
        "ferrotron: image imported: {} ({:.1} MiB) in {:.1} s",
        imported.path.display(),
        imported.size_bytes as f64 / 1048576.0,
        imported.elapsed.as_secs_f64()
    );
    println!("{}:{}", imported.manifest.name, imported.manifest.version);
    Ok(ExitStatus::Passed)
}

fn build(
    store: &ImageStore,
    agent: &std::path::Path,
    if_changed: bool,
    recipe_path: &std::path::Path,
) -> CmdResult {
    let recipe = Recipe::load(recipe_path).map_err(|e| Failure::new(ExitStatus::BadInput, e))?;
    if !agent.is_file() {
        return Err(Failure::bad_input(format!(
            "guest agent {} does not exist (build it: make agent)",
            agent.display()
        )));
    }
    if if_changed {
        if let Ok(current) = store.resolve(&recipe.name) {
            let same_recipe = ferrotron::util::sha256_file(recipe_path).ok().as_deref()
                == Some(current.manifest.recipe_sha256.as_str());
            let same_agent = ferrotron::util::sha256_file(agent).ok().as_deref()
                == Some(current.manifest.agent.sha256.as_str());
            let same_builder =
                current.manifest.builder == ferrotron_imagebuilder::builder::builder_id();
            if same_recipe && same_agent && same_builder {
                eprintln!(
                    "ferrotron: image {} is up to date with {}",
                    current.reference(),
                    recipe_path.display()
                );
                return Ok(ExitStatus::Passed);
            }
        }
    }
    let mut step_started = Instant::now();
    let mut progress = |ev: BuildEvent| match ev {
        BuildEvent::Step { name, detail } => {
            eprintln!(
                "ferrotron: image {:<8} {detail}  (+{:.1} s)",
                name,
                step_started.elapsed().as_secs_f64()
            );
            step_started = Instant::now();
        }
        BuildEvent::Done {
            path,
            size_bytes,
            elapsed,
        } => {
            eprintln!(
                "ferrotron: image built: {} ({:.1} MiB) in {:.1} s",
                path.display(),
                size_bytes as f64 / 1048576.0,
                elapsed.as_secs_f64()
            );
        }
    };
    let built = store
        .build(
            recipe_path,
            &BuildOptions::new(agent.to_path_buf()),
            &mut progress,
        )
        .map_err(Failure::infra)?;
    println!("{}:{}", built.manifest.name, built.manifest.version);
    Ok(ExitStatus::Passed)
}
