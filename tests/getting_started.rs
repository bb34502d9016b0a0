//! `docs/getting-started.md` as a reader runs it. Its shell blocks, marked
//! `<!-- getting-started: KIND -->`, are extracted from the markdown and run
//! with bash as written: `server` as relurl's terminal (its `cargo run
//! --release` stands for the binary this build made, on a free port and a
//! temp data dir), then `settings` (the test's own ports replace the guide's
//! 8080 and 4000 after it) and every `run` block in order, in one shell. The
//! webhooks must arrive at the Node receiver those commands start.
//!
//! Needs Node.js and npm; skipped with a message when absent, unless
//! `RELURL_REQUIRE_NODE=1` (CI), where their absence fails the test.

mod common;

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::process::Group;

const GUIDE: &str = "docs/getting-started.md";
const MARKER: &str = "<!-- getting-started: ";
/// Far past what the commands need (npm ci included), so a busy machine only
/// makes the test slower.
const WAIT: Duration = Duration::from_secs(180);

/// The guide's marked blocks, by kind.
#[derive(Default)]
struct Guide {
    server: Vec<String>,
    settings: Vec<String>,
    run: Vec<String>,
}

/// Each marker line must be followed by a fenced `sh` block.
fn parse(markdown: &str) -> Guide {
    let mut guide = Guide::default();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(kind) = line
            .strip_prefix(MARKER)
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.next(),
            Some("```sh"),
            "{GUIDE}: marker {kind:?} is not followed by a ```sh block"
        );
        let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        let block = block.join("\n");
        match kind {
            "server" => guide.server.push(block),
            "settings" => guide.settings.push(block),
            "run" => guide.run.push(block),
            other => panic!("{GUIDE}: unknown marker kind {other:?}"),
        }
    }
    assert_eq!(guide.server.len(), 1, "{GUIDE}: one server block");
    assert_eq!(guide.settings.len(), 1, "{GUIDE}: one settings block");
    assert!(!guide.run.is_empty(), "{GUIDE}: no run blocks");
    guide
}

fn bash(root: &Path, script: &str) -> Command {
    let mut command = Command::new("bash");
    command
        .args(["-c", script])
        .current_dir(root)
        // The guide's commands must not depend on settings of the machine running the test.
        .env_remove("RELURL_LOG__FORMAT")
        .process_group(0);
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guides_commands_bring_a_webhook_to_the_node_receiver() {
    if !common::node::available("getting-started") {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let guide = parse(&std::fs::read_to_string(root.join(GUIDE)).expect("read the guide"));
    let tmp = tempfile::tempdir().expect("temp dir");

    // relurl's terminal: `cargo run --release` runs the built binary.
    let server_script = format!(
        "set -eu\ncargo() {{ [ \"$*\" = 'run --release' ] || {{ echo \"unexpected: cargo $*\" >&2; exit 97; }}; exec \"$RELURL_BIN\"; }}\n{}\n",
        guide.server[0]
    );
    let mut server = bash(&root, &server_script)
        .env("RELURL_BIN", env!("CARGO_BIN_EXE_relurl"))
        .env("RELURL_SERVER__LISTEN", "127.0.0.1:0")
        .env("RELURL_STORE__PATH", tmp.path().join("data"))
        .env("RELURL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server block");
    let addr = common::process::listening(&mut server);
    let _server = Group(server);

    // The other terminal: every run block in one shell, as a reader types them.
    let receiver_port = free_port();
    let script = format!(
        "set -euo pipefail\n{}\n# The test's ports in place of the guide's.\nRELURL=http://{addr}\nRECEIVER_PORT={receiver_port}\n{}\n",
        guide.settings[0],
        guide.run.join("\n")
    );
    let log_path = tmp.path().join("commands.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let commands = bash(&root, &script)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start the guide's commands");
    let mut commands = Group(commands);
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = commands.0.try_wait().expect("wait for the commands") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the guide's commands did not finish within {WAIT:?}:\n{}",
            read_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "the guide's commands failed ({status}):\n{}",
        read_log()
    );
    let output = read_log();
    assert!(
        output.contains("302 https://example.com/launch?utm_source=mail"),
        "the redirect is not in the output:\n{output}"
    );

    // The receiver the commands left running has every event, none refused.
    let expected = ["link.clicked", "link.created", "webhook.test"];
    let seen = common::node::wait_for_events(receiver_port, &expected, WAIT).await;
    assert_eq!(
        seen["rejected"],
        0,
        "a delivery was refused: {seen}\n{}",
        read_log()
    );
    drop(commands);
}
