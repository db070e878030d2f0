//! mDNS on a LAN of its own: a network namespace this test makes (`unshare
//! --net`, as root) holding a veth pair, 10.71.0.1 and 10.71.0.2, multicast
//! on: nothing leaves the machine. The real binary listens on 10.71.0.1
//! (a non-loopback address, so it announces itself); python-zeroconf, a
//! real mDNS client, resolves `piarchive.local` and browses `_https._tcp`.
//! A second appliance on 10.71.0.2 then claims the same name, finds it
//! taken (RFC 6762 probing) and answers as `piarchive-2.local`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A network namespace, alive while its holder process waits on stdin.
struct Netns {
    holder: Child,
    _stdin: ChildStdin,
}

const SETUP: &str = "set -e
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 10.71.0.1/24 dev v0
ip addr add 10.71.0.2/24 dev v1
ip link set v0 up multicast on
ip link set v1 up multicast on
# Both ends are this host's: accept packets from its own addresses.
for i in all default v0 v1; do
  sysctl -qw net.ipv4.conf.$i.accept_local=1 net.ipv4.conf.$i.rp_filter=0
done
echo ready
exec cat";

impl Netns {
    fn create() -> Netns {
        let mut holder = Command::new("unshare")
            .args(["--net", "sh", "-c", SETUP])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("unshare (util-linux) runs");
        let stdin = holder.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the namespace's first line");
        assert_eq!(
            line.trim(),
            "ready",
            "could not make a network namespace (this test needs root: unshare --net, veth)"
        );
        Netns {
            holder,
            _stdin: stdin,
        }
    }

    /// `program` run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net=/proc/{}/ns/net", self.holder.id()))
            .arg(program);
        command
    }

    /// The python-zeroconf client's view after it resolved `host` and found
    /// `services` `_https._tcp` services, or after `seconds`.
    fn look(&self, host: &str, services: usize, seconds: u32) -> Value {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/mdns_client.py");
        let output = self
            .command("python3")
            .args([script, host, &services.to_string(), &seconds.to_string()])
            .output()
            .expect("python3 runs");
        assert!(
            output.status.success(),
            "the mDNS client failed (pip install zeroconf): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("the client prints JSON")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// A `piarchive serve` inside the namespace, its stderr lines in `lines`.
struct Appliance {
    child: Child,
    lines: Receiver<String>,
    _dir: tempfile::TempDir,
    https_port: u16,
}

impl Appliance {
    fn start(netns: &Netns, address: &str) -> Appliance {
        let dir = tempfile::tempdir().unwrap();
        let mut child = netns
            .command(env!("CARGO_BIN_EXE_piarchive"))
            .args(["serve", "--listen", &format!("{address}:0")])
            .args(["--listen-https", &format!("{address}:0")])
            .arg("--data")
            .arg(dir.path().join("data"))
            .env_remove("PIARCHIVE_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start piarchive");
        // The first line of stdout says where it listens; the rest is drained.
        let (first_tx, first_rx) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = first_tx.send(line);
            }
        });
        let first = first_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("piarchive printed its address");
        let https = first
            .split_whitespace()
            .find(|word| word.starts_with("https://"))
            .unwrap_or_else(|| panic!("no HTTPS address in {first:?}"));
        let https_port = https.rsplit(':').next().unwrap().parse().unwrap();
        let (tx, lines) = channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = std::io::stderr().write_all(format!("{line}\n").as_bytes());
                let _ = tx.send(line);
            }
        });
        Appliance {
            child,
            lines,
            _dir: dir,
            https_port,
        }
    }

    /// Waits (at most `limit`) for a line of the server's log containing
    /// `text`.
    fn wait_for_line(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no log line with {text:?} within {limit:?}"),
            }
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn piarchive_local_resolves_is_browsed_and_a_second_appliance_takes_the_dash_2_name() {
    let netns = Netns::create();
    let first = Appliance::start(&netns, "10.71.0.1");

    let seen = netns.look("piarchive.local", 1, 30);
    assert_eq!(seen["resolved"], serde_json::json!(["10.71.0.1"]), "{seen}");
    let services = seen["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "{seen}");
    assert_eq!(services[0]["server"], "piarchive.local.");
    assert_eq!(services[0]["port"], first.https_port);
    assert_eq!(services[0]["path"], "/");
    assert_eq!(services[0]["addresses"], serde_json::json!(["10.71.0.1"]));

    // A second appliance wants the same name: it probes, finds it taken,
    // and answers as piarchive-2.local; the first keeps its name.
    let second = Appliance::start(&netns, "10.71.0.2");
    let renamed = second.wait_for_line("answers as piarchive-2.local", Duration::from_secs(30));
    assert!(renamed.contains("piarchive.local"), "{renamed}");
    let seen = netns.look("piarchive-2.local", 2, 30);
    assert_eq!(seen["resolved"], serde_json::json!(["10.71.0.2"]), "{seen}");
    let mut servers: Vec<(String, u64)> = seen["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["server"].as_str().unwrap().to_string(),
                s["port"].as_u64().unwrap(),
            )
        })
        .collect();
    servers.sort();
    assert_eq!(
        servers,
        vec![
            (
                "piarchive-2.local.".to_string(),
                u64::from(second.https_port)
            ),
            ("piarchive.local.".to_string(), u64::from(first.https_port)),
        ],
        "{seen}"
    );
    let again = netns.look("piarchive.local", 1, 10);
    assert_eq!(
        again["resolved"],
        serde_json::json!(["10.71.0.1"]),
        "{again}"
    );
}
