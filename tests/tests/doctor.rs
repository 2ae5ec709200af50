//! `ferrotron doctor` on this host as the test suite set it up (libvirt,
//! images, the database, RabbitMQ: every check passes or only warns, exit
//! 0), and with each piece broken in turn: the line of that check says
//! FAIL with what was found and what to do, the others are unchanged, and
//! the exit status is 1. Nothing is created by looking.

use ferrotron_tests::amqp::amqp_url;
use ferrotron_tests::Harness;

/// (status, check, detail) of each check line, and the exit code.
fn doctor(
    h: &Harness,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, Vec<(String, String, String)>, String) {
    let mut all = vec!["doctor"];
    all.extend_from_slice(args);
    let mut c = h.command(&all);
    c.envs(env.iter().copied());
    let out = c.output().expect("run doctor");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines = text
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with("doctor:"))
        .map(|l| {
            let mut w = l.splitn(2, ' ');
            let status = w.next().unwrap_or_default().to_string();
            let rest = w.next().unwrap_or_default().trim_start();
            let (name, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            (status, name.to_string(), detail.trim().to_string())
        })
        .collect();
    (out.status.code(), lines, text)
}

fn status_of<'a>(
    lines: &'a [(String, String, String)],
    name: &str,
) -> &'a (String, String, String) {
    lines
        .iter()
        .find(|(_, n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} line in {lines:?}"))
}

/// The check broken, doctor's arguments and environment that break it, and
/// the start of the fix it must print.
type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn a_healthy_host_passes_and_each_broken_piece_fails_alone() {
    let h = Harness::new("doctor");
    let broker = amqp_url();
    let (code, lines, text) = doctor(&h, &["--amqp-url", &broker], &[]);
    assert_eq!(code, Some(0), "{text}");
    let names: Vec<&str> = lines.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "libvirt",
            "kvm",
            "images",
            "templates",
            "database",
            "broker",
            "disk",
            "clock"
        ],
        "{text}"
    );
    for (s, n, d) in &lines {
        assert!(s == "ok" || s == "warn", "{n}: {s} {d}\n{text}");
    }
    assert!(text.contains("this host can run jobs"), "{text}");
    // A fresh data folder's database is not created by looking at it.
    assert!(
        !h.data_dir.join("ferrotron.db").exists(),
        "doctor created the database"
    );
    assert!(
        status_of(&lines, "database")
            .2
            .contains("not created or migrated yet"),
        "{text}"
    );

    let empty = h.data_dir.join("no-images");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let broken: [Case; 4] = [
        (
            "libvirt",
            vec!["--libvirt-uri", "qemu+tcp://127.0.0.1:1/system"],
            vec![],
            "start libvirtd",
        ),
        (
            "images",
            vec![],
            vec![("FERROTRON_IMAGES_DIR", empty.to_str().expect("utf-8"))],
            "build one: make image",
        ),
        (
            "database",
            vec![],
            vec![(
                "FERROTRON_DATABASE_URL",
                "postgres://ferrotron:s3cret@127.0.0.1:1/none",
            )],
            "start the database",
        ),
        (
            "broker",
            vec!["--amqp-url", "amqp://guest:s3cret@127.0.0.1:1/%2f"],
            vec![],
            "start RabbitMQ",
        ),
    ];
    for (name, args, env, fix) in broken {
        let mut a = args.clone();
        if name != "broker" {
            a.extend(["--amqp-url", broker.as_str()]);
        }
        let (code, lines, text) = doctor(&h, &a, &env);
        assert_eq!(code, Some(1), "{name} broken: {text}");
        let (s, _, _) = status_of(&lines, name);
        assert_eq!(s, "FAIL", "{text}");
        assert!(text.contains(&format!("fix: {fix}")), "{name}: {text}");
        let failed: Vec<&str> = lines
            .iter()
            .filter(|(s, _, _)| s == "FAIL")
            .map(|(_, n, _)| n.as_str())
            .collect();
        assert_eq!(failed, [name], "only {name} fails: {text}");
        assert!(!text.contains("s3cret"), "a password was printed: {text}");
        assert!(text.contains("jobs cannot run here"), "{text}");
    }
}
