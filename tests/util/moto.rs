//! A real EC2 API for tests: starts `moto_server` on a free loopback port, gives an SDK
//! client for it, launches and tags instances, and kills the server on drop. Reusable from any
//! test module with `crate::util::moto::Moto::start()`.

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::Client;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::Duration;

/// The region every moto test uses.
pub const REGION: &str = "us-east-1";
/// An AMI that moto ships in every region.
pub const AMI: &str = "ami-12c6146b";

/// The AWS variables every test process and every `opsd` child must see: dummy keys, a
/// region, and instance metadata disabled (and pointed at a closed loopback port besides), so
/// nothing ever probes 169.254.169.254; no shared config file is read.
pub const AWS_TEST_ENV: &[(&str, &str)] = &[
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/"),
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", REGION),
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
];

/// Applies [`AWS_TEST_ENV`] to this test process once, before any test reads the environment.
pub fn aws_test_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (k, v) in AWS_TEST_ENV {
            std::env::set_var(k, v);
        }
        for k in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        ] {
            std::env::remove_var(k);
        }
    });
}

/// `$MOTO_SERVER`, else the CI's `<repo>/.ci/venv/bin/moto_server`, else `moto_server` on PATH.
pub fn moto_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "MOTO_SERVER={} does not exist", p.display());
        return p;
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "moto_server not found: set MOTO_SERVER, or run .ci/setup to install it into {}, or put it on PATH",
            venv.display()
        )
    })
}

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start() -> Moto {
        aws_test_env();
        let port = super::free_port();
        let child = Command::new(moto_server_path())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let mut moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let listening = super::poll_until(Duration::from_secs(60), || {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto_server exited before listening: {status}");
            }
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            listening,
            "moto_server did not listen on port {port} within 60s"
        );
        moto
    }

    /// An SDK client for this server with the dummy credentials.
    pub fn client(&self) -> Client {
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        Client::from_conf(conf)
    }

    /// Launches `count` running instances carrying `tags`; returns their ids.
    pub async fn launch(&self, count: i32, tags: &[(&str, &str)]) -> Vec<String> {
        let mut req = self
            .client()
            .run_instances()
            .image_id(AMI)
            .instance_type(InstanceType::T3Micro)
            .min_count(count)
            .max_count(count);
        if !tags.is_empty() {
            let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
            for (k, v) in tags {
                spec = spec.tags(Tag::builder().key(*k).value(*v).build());
            }
            req = req.tag_specifications(spec.build());
        }
        let out = req.send().await.expect("RunInstances on moto");
        out.instances()
            .iter()
            .map(|i| i.instance_id().expect("an id").to_string())
            .collect()
    }

    /// Stops instances directly (test setup).
    pub async fn stop(&self, ids: &[String]) {
        self.client()
            .stop_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .expect("StopInstances on moto");
    }

    /// The current state name of one instance.
    pub async fn state(&self, id: &str) -> String {
        let out = self
            .client()
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("DescribeInstances on moto");
        out.reservations()[0].instances()[0]
            .state()
            .and_then(|s| s.name())
            .expect("a state")
            .as_str()
            .to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
