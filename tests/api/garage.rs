//! A real S3-compatible server for tests: Garage, single node on loopback.
//! Garage checks SigV4 signatures and refuses the SDK's default checksums the
//! way R2 does, and supports multipart, lifecycle rules and presigned links.
//! `tests/run.sh` installs it (cached) when it is missing.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

/// The server, shared by every test of this binary.
pub struct Garage {
    binary: PathBuf,
    config: PathBuf,
    pub endpoint: String,
    pub key_id: String,
    pub secret: String,
}

static GARAGE: OnceCell<Garage> = OnceCell::const_new();

fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("CLIPFORGE_GARAGE") {
        return p.into();
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/clipforge/garage/bin/garage")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Garage {
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(&self.binary).arg("-c").arg(&self.config).args(args).output().unwrap();
        assert!(out.status.success(), "garage {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new bucket the test key owns.
    pub fn bucket(&self) -> String {
        let name = format!("t{}", uuid::Uuid::now_v7().simple());
        self.cli(&["bucket", "create", &name]);
        self.cli(&["bucket", "allow", "--read", "--write", "--owner", &name, "--key", "test-key"]);
        name
    }

    /// A second key that may read and write `bucket` but not own it.
    pub fn limited_key(&self, bucket: &str) -> (String, String) {
        let name = format!("limited-{}", uuid::Uuid::now_v7().simple());
        let (id, secret) = parse_key(&self.cli(&["key", "create", &name]));
        self.cli(&["bucket", "allow", "--read", "--write", bucket, "--key", &name]);
        (id, secret)
    }

    /// Settings that point clipforge's object store at `bucket`.
    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        [
            ("CLIPFORGE__STORAGE__TYPE", "s3"),
            ("CLIPFORGE__STORAGE__ENDPOINT", self.endpoint.as_str()),
            ("CLIPFORGE__STORAGE__REGION", "garage"),
            ("CLIPFORGE__STORAGE__BUCKET", bucket),
            ("CLIPFORGE__STORAGE__ACCESS_KEY_ID", self.key_id.as_str()),
            ("CLIPFORGE__STORAGE__SECRET_ACCESS_KEY", self.secret.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

fn parse_key(out: &str) -> (String, String) {
    let id = out.split_whitespace().find(|w| w.starts_with("GK")).expect("a key id in garage's answer").to_string();
    let secret_line =
        out.lines().find(|l| l.to_lowercase().contains("secret key")).expect("a secret in garage's answer");
    let secret = secret_line.split_whitespace().last().unwrap().to_string();
    (id, secret)
}

/// `<tmp>/clipforge-garage/<pid>`: the server outlives no test binary, but its
/// files would, so folders of test binaries that are gone are removed first.
fn data_dir() -> PathBuf {
    let base = std::env::temp_dir().join("clipforge-garage");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let alive = e.file_name().to_str().is_some_and(|pid| Path::new("/proc").join(pid).exists());
            if !alive {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Starts Garage once for this test binary and returns it.
pub async fn garage() -> &'static Garage {
    GARAGE.get_or_init(|| async { tokio::task::spawn_blocking(start).await.unwrap() }).await
}

fn start() -> Garage {
    let binary = binary();
    assert!(binary.exists(), "Garage is not installed at {} (bash tests/run.sh test installs it)", binary.display());
    let dir = data_dir();
    let (rpc, s3) = (free_port(), free_port());
    // 32 bytes of hex for the node-to-node secret; loopback-only, test-only.
    let secret = format!("{}{}", uuid::Uuid::now_v7().simple(), uuid::Uuid::now_v7().simple());
    let config = dir.join("garage.toml");
    std::fs::write(
        &config,
        format!(
            "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\nrpc_secret = \"{secret}\"\n\
             [s3_api]\ns3_region = \"garage\"\napi_bind_addr = \"127.0.0.1:{s3}\"\nroot_domain = \".s3.garage.localhost\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    // The server lives as long as this test binary: it is started from a thread
    // that never ends, and the kernel kills it when the binary exits.
    let (tx, rx) = std::sync::mpsc::channel();
    let (b, c, log) = (binary.clone(), config.clone(), dir.join("garage.log"));
    std::thread::spawn(move || {
        let mut cmd = Command::new(&b);
        cmd.arg("-c")
            .arg(&c)
            .arg("server")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null());
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let _child = cmd.spawn().expect("garage starts");
        tx.send(()).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap();
    let garage = Garage {
        binary,
        config,
        endpoint: format!("http://127.0.0.1:{s3}"),
        key_id: String::new(),
        secret: String::new(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let node = loop {
        let out = Command::new(&garage.binary).arg("-c").arg(&garage.config).arg("status").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains("NO ROLE")) {
            break line.split_whitespace().next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "garage did not come up: {text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    garage.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node]);
    garage.cli(&["layout", "apply", "--version", "1"]);
    let (key_id, secret) = parse_key(&garage.cli(&["key", "create", "test-key"]));
    Garage { key_id, secret, ..garage }
}
