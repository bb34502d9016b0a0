//! `relurl serve` as a child process (the built binary), for tests that kill
//! it or run several.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
};

/// Starts `relurl serve --config <config>`; returns once it logs its address.
pub fn serve(config: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relurl"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RELURL_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start relurl");
    let addr = listening(&mut child);
    (child, addr)
}

/// The address a relurl child (stderr piped, text logs at info) logs once it
/// listens; its log is drained from then on so it never blocks on a full pipe.
pub fn listening(child: &mut Child) -> SocketAddr {
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let (mut line, mut log) = (String::new(), String::new());
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).expect("read log") > 0,
            "relurl exited before listening:\n{log}"
        );
        log.push_str(&line);
        if line.contains("listening") {
            let at = line.find("addr=").expect("addr field") + 5;
            break line[at..].trim().parse().expect("listen address");
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in stderr.lines() {});
    addr
}

/// A child started with `process_group(0)` and everything it started, killed
/// on drop.
pub struct Group(pub Child);

impl Drop for Group {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.0.wait();
    }
}
