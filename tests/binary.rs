//! The `relurl` binary as an operator runs it: configuration errors, the admin
//! token printed once, and a clean exit on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

fn relurl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_relurl"))
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relurl.toml");
    std::fs::write(&path, "[server]\nlisten = \"nowhere\"\nspeed = 11\n").unwrap();
    let out = relurl().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("speed"), "{stderr}");

    std::fs::write(
        &path,
        "[redirect]\ndefault_status = 200\n[fraud]\nipv4_prefix = 40\n",
    )
    .unwrap();
    let out = relurl().arg("--config").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("redirect.default_status"), "{stderr}");
    assert!(stderr.contains("fraud.ipv4_prefix"), "{stderr}");

    let out = relurl()
        .arg("check-config")
        .env("RELURL_REDIRECT__FLUSH_MAX_BATCH", "zero")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("redirect.flush_max_batch"), "{stderr}");

    let missing = relurl()
        .args(["--config", "/no/such/file.toml"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/file.toml"));
}

/// Starts the server on an ephemeral port with `env` added; returns it with
/// the log lines read up to "listening" and its stdout.
fn start(
    data: &std::path::Path,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    Vec<String>,
    BufReader<std::process::ChildStdout>,
) {
    let mut child = relurl()
        .arg("serve")
        .env("RELURL_SERVER__LISTEN", "127.0.0.1:0")
        .env("RELURL_STORE__PATH", data)
        .env("RELURL_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let stderr = BufReader::new(child.stderr.take().unwrap());
    // The "listening" log line tells the server is up.
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        if line.contains("listening") {
            seen.push(line);
            break;
        }
        seen.push(line);
    }
    (child, seen, stdout)
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn admin_token_printed_once_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (mut first, log, stdout) = start(dir.path(), &[]);
    assert!(log.iter().any(|l| l.contains("listening")), "{log:?}");
    let status = terminate(&mut first);
    assert!(status.success(), "exit status {status:?}");
    let printed: Vec<String> = stdout.lines().map_while(Result::ok).collect();
    assert!(
        printed
            .iter()
            .any(|l| l.starts_with("admin token") && l.contains("rladm_")),
        "{printed:?}"
    );

    let (mut second, _, stdout) = start(dir.path(), &[]);
    let status = terminate(&mut second);
    assert!(status.success(), "second run: {status:?}");
    let printed: Vec<String> = stdout.lines().map_while(Result::ok).collect();
    assert!(
        !printed.iter().any(|l| l.contains("admin token")),
        "{printed:?}"
    );
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, log, _stdout) = start(dir.path(), &[("RELURL_LOG__FORMAT", "json")]);
    terminate(&mut child);
    assert!(log.len() >= 2, "{log:?}");
    for line in &log {
        let entry: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for field in ["timestamp", "level", "target", "message"] {
            assert!(entry[field].is_string(), "no {field}: {line}");
        }
    }
    let listening: serde_json::Value = serde_json::from_str(log.last().unwrap()).unwrap();
    assert_eq!(listening["message"], "listening");
    // The event's fields sit next to the message, where log shippers look.
    assert!(
        listening["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{listening}"
    );
}
