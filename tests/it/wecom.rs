//! The WeCom finance-SDK puller against a stand-in library with the SDK's C functions
//! (`tests/fixtures/wecom_sdk_standin.c`, compiled here), run inside `huixi serve` as in production.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use base64::Engine as _;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey, RsaPublicKey};

use crate::helpers::*;

/// rand's seeded generator, for the rand_core version the rsa crate takes.
struct Seeded(rand::rngs::StdRng);
impl rsa::rand_core::RngCore for Seeded {
    fn next_u32(&mut self) -> u32 {
        rand::RngCore::next_u32(&mut self.0)
    }
    fn next_u64(&mut self) -> u64 {
        rand::RngCore::next_u64(&mut self.0)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand::RngCore::fill_bytes(&mut self.0, dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        rand::RngCore::fill_bytes(&mut self.0, dest);
        Ok(())
    }
}
impl rsa::rand_core::CryptoRng for Seeded {}
fn seeded(seed: u64) -> Seeded {
    Seeded(rand::SeedableRng::seed_from_u64(seed))
}

/// Compiles the stand-in SDK once per test into `dir`.
fn standin(dir: &Path) -> PathBuf {
    let out = dir.join("libWeWorkFinanceSdk_C.so");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(fixture("wecom_sdk_standin.c"))
        .status()
        .expect("a C compiler (cc) is on the machine");
    assert!(status.success(), "the stand-in SDK compiles");
    out
}

/// The archive WeCom holds for one corp, as the stand-in serves it.
struct Archive {
    dir: PathBuf,
    lines: Vec<String>,
    keys: Vec<RsaPrivateKey>,
    rng: Seeded,
}

impl Archive {
    fn new(dir: &Path, keys: usize) -> Archive {
        std::fs::create_dir_all(dir.join("media")).unwrap();
        let mut rng = seeded(42);
        let keys = (0..keys)
            .map(|_| RsaPrivateKey::new(&mut rng, 1024).unwrap())
            .collect();
        Archive {
            dir: dir.to_path_buf(),
            lines: Vec::new(),
            keys,
            rng,
        }
    }

    fn pem(&self, version: u32) -> String {
        self.keys[version as usize - 1]
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .unwrap()
            .to_string()
    }

    /// An item whose random key is sealed for key `version` (which may be one the tenant lacks).
    fn item(&mut self, msgid: &str, version: u32, plain: &str) {
        let seq = self.lines.len() + 1;
        let random_key = format!("rk{seq:06}abcdefghijklmnopqrstuv");
        let key = &self.keys[(version as usize - 1).min(self.keys.len() - 1)];
        let sealed = RsaPublicKey::from(key)
            .encrypt(&mut self.rng, Pkcs1v15Encrypt, random_key.as_bytes())
            .unwrap();
        let cipher: String = plain
            .bytes()
            .zip(random_key.bytes().cycle())
            .map(|(b, k)| format!("{:02x}", b ^ k))
            .collect();
        let item = serde_json::json!({
            "seq": seq,
            "msgid": msgid,
            "publickey_ver": version,
            "encrypt_random_key": base64::engine::general_purpose::STANDARD.encode(sealed),
            "encrypt_chat_msg": cipher,
        });
        self.lines.push(format!("{seq}\t{item}"));
    }

    fn text(&mut self, msgid: &str, from: &str, to: &str, msgtime: i64, content: &str) {
        let m = serde_json::json!({
            "msgid": msgid, "action": "send", "from": from, "tolist": [to], "roomid": "",
            "msgtime": msgtime, "msgtype": "text", "text": {"content": content},
        });
        self.item(msgid, 1, &m.to_string());
    }

    fn write(&self) {
        std::fs::write(self.dir.join("chatdata.txt"), self.lines.join("\n") + "\n").unwrap();
    }

    fn set(&self, name: &str, value: &str) {
        std::fs::write(self.dir.join(name), value).unwrap();
    }
}

/// A tenant's archive of a working day two hours ago: 60 customers of 3 staff, 2,400 messages over
/// three pages, a few hand-offs, one image, and two items that cannot be read.
fn day_archive(dir: &Path, start: i64) -> (Archive, Vec<u8>) {
    let mut a = Archive::new(dir, 2);
    let mut image = vec![0u8; 200_000];
    rand::RngCore::fill_bytes(&mut seeded(5).0, &mut image);
    std::fs::write(dir.join("media/file-img-1"), &image).unwrap();
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&image));
    for i in 0..2_400 {
        let (staff, customer) = (format!("staff{}", i % 3), format!("wmcust{:03}", i % 60));
        let t = start + i as i64 * 1_000;
        let id = format!("m{i:05}");
        match i {
            1_500 => a.item(&id, 2, "{}"), // sealed for a key the tenant has not given
            1_700 => a.item(&id, 1, "not json at all"),
            900 => {
                let m = serde_json::json!({
                    "msgid": id, "action": "send", "from": staff, "tolist": [customer],
                    "roomid": "", "msgtime": t, "msgtype": "image",
                    "image": {"md5sum": md5, "filesize": image.len(), "sdkfileid": "file-img-1"},
                });
                a.item(&id, 1, &m.to_string());
            }
            _ if i % 97 == 0 => a.text(&id, &customer, &staff, t, "加我微信吧，私下聊"),
            _ if i % 2 == 0 => a.text(&id, &staff, &customer, t, "您好，这款课程适合您的孩子"),
            _ => a.text(&id, &customer, &staff, t, "好的，价格是多少"),
        }
    }
    a.write();
    (a, image)
}

fn serve(db: &str, sdk: &Path, standin_dir: &Path, media: &Path) -> (Child, String) {
    spawn_serve(
        Command::new(env!("CARGO_BIN_EXE_huixi"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .env("HUIXI_WECOM_SDK", sdk)
            .env("HUIXI_MEDIA_DIR", media)
            .env("STANDIN_DIR", standin_dir),
    )
}

/// `huixi ingest wecom set` for the tenant, with the stand-in as its SDK (so that the CLI's replay
/// finds it too).
fn set_source(db: &str, dir: &Path, tenant: &str, corpid: &str, keys: &[(u32, &str)]) {
    let sdk = dir
        .ancestors()
        .map(|d| d.join("libWeWorkFinanceSdk_C.so"))
        .find(|p| p.exists())
        .expect("the stand-in is compiled first");
    std::fs::write(dir.join("secret"), "the-archive-secret").unwrap();
    let secret = dir.join("secret").display().to_string();
    let mut args = vec![
        "ingest".to_string(),
        "wecom".into(),
        "set".into(),
        "--tenant".into(),
        tenant.into(),
        "--corpid".into(),
        corpid.into(),
        "--secret-file".into(),
        secret,
        "--interval-secs".into(),
        "1".into(),
        "--sdk-path".into(),
        sdk.display().to_string(),
        "--db".into(),
        db.into(),
    ];
    for (v, pem) in keys {
        let path = dir.join(format!("key{v}.pem"));
        std::fs::write(&path, pem).unwrap();
        args.push("--key".into());
        args.push(format!("{v}={}", path.display()));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = huixi(&refs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn scalar(db: &str, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(db).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.expect(sql);
    pool.close().await;
    n
}

/// What a pull leaves in the store that must not depend on crashes along the way.
async fn outcome(db: &str) -> Vec<String> {
    rows_of(
        db,
        &[
            "SELECT tenant, msgid, conversation, msgtime, raw FROM huixi_messages ORDER BY msgid",
            "SELECT session_id, msgid, kind, category, severity, word, text, start_char, end_char \
             FROM huixi_alerts ORDER BY msgid, kind, word",
            "SELECT id, conversation, message_count, input_hash FROM huixi_sessions ORDER BY id",
            "SELECT seq, msgid, raw, reason FROM huixi_quarantine ORDER BY seq",
            "SELECT msgid, md5sum, written FROM huixi_media ORDER BY msgid",
            "SELECT cursor_seq, newest_msgtime FROM huixi_wecom_sources",
        ],
    )
    .await
}

/// Waits until the whole archive is in: cursor at the end, media fetched, every conversation analysed.
async fn wait_done(db: &str, last_seq: i64) {
    let db = db.to_string();
    eventually(
        120,
        "the archive pulled, its media fetched and its sessions analysed",
        || {
            let db = db.clone();
            async move {
                let cursor = scalar(&db, "SELECT cursor_seq FROM huixi_wecom_sources").await;
                let media = scalar(
                    &db,
                    "SELECT COUNT(*) FROM huixi_media WHERE location IS NOT NULL",
                )
                .await;
                let pending = scalar(&db, "SELECT COUNT(*) FROM huixi_pending_analysis").await;
                // Every stored message in an analysed session, every real-time alert adopted by one.
                let analysed = scalar(
                    &db,
                    "SELECT COALESCE(SUM(message_count), 0) FROM huixi_sessions",
                )
                .await;
                let live = scalar(
                    &db,
                    "SELECT COUNT(*) FROM huixi_alerts WHERE session_id = ''",
                )
                .await;
                let stored = scalar(&db, "SELECT COUNT(*) FROM huixi_messages").await;
                let done = cursor == last_seq && media == 1 && pending == 0;
                (done && live == 0 && analysed == stored).then_some(())
            }
        },
    )
    .await
}

/// Waits for a serve the stand-in crashes (abort) to die.
fn wait_crash(child: &mut Child, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                !status.success(),
                "{what}: serve ended without the crash: {status}"
            );
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: no crash came"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_pulls_alerts_and_analyses_and_crashes_mid_page_and_mid_media_lose_and_double_nothing(
) {
    let root = tempfile::tempdir().unwrap();
    let sdk = standin(root.path());
    let start = chrono::Utc::now().timestamp_millis() - 2 * 3_600_000;

    // A clean run first: what the store must hold in the end.
    let clean_dir = root.path().join("clean");
    let (archive, image) = day_archive(&clean_dir.join("wecom"), start);
    let clean_db = sqlite_url(&clean_dir);
    set_source(
        &clean_db,
        &clean_dir,
        "acme",
        "wwacme",
        &[(1, &archive.pem(1))],
    );
    let (mut child, _) = serve(
        &clean_db,
        &sdk,
        &clean_dir.join("wecom"),
        &clean_dir.join("media"),
    );
    wait_done(&clean_db, 2_400).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let clean = outcome(&clean_db).await;

    // The same archive, and a process that dies twice: in the middle of the second page (its
    // 1,500th decryption) and in the middle of the image (at its second chunk).
    let dir = root.path().join("crashing");
    let (archive, _) = day_archive(&dir.join("wecom"), start);
    archive.set("crash_decrypt_at", "1500");
    archive.set("crash_media_at", "65536");
    let db = sqlite_url(&dir);
    set_source(&db, &dir, "acme", "wwacme", &[(1, &archive.pem(1))]);
    let media = dir.join("media");
    let (mut child, _) = serve(&db, &sdk, &dir.join("wecom"), &media);
    wait_crash(&mut child, "mid-page");
    assert_eq!(
        scalar(&db, "SELECT cursor_seq FROM huixi_wecom_sources").await,
        1_000,
        "the first page is stored with its cursor; the second is not"
    );
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM huixi_messages").await,
        1_000
    );
    let (mut child, _) = serve(&db, &sdk, &dir.join("wecom"), &media);
    wait_crash(&mut child, "mid-media");
    assert_eq!(
        scalar(&db, "SELECT written FROM huixi_media").await,
        65_536,
        "the image's first chunk is recorded, the crash came at the second"
    );
    let (mut child, _) = serve(&db, &sdk, &dir.join("wecom"), &media);
    wait_done(&db, 2_400).await;
    child.kill().unwrap();
    child.wait().unwrap();

    let crashed = outcome(&db).await;
    assert_eq!(crashed.len(), clean.len(), "as many rows as the clean run");
    for (a, b) in crashed.iter().zip(&clean) {
        assert_eq!(a, b);
    }
    // 2,398 messages stored, two quarantined with their reasons; alerts raised in real time and
    // adopted by their sessions, one row each.
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM huixi_messages").await,
        2_398
    );
    let reasons = rows_of(
        &db,
        &["SELECT seq, reason FROM huixi_quarantine ORDER BY seq"],
    )
    .await;
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].starts_with("1501 | ") && reasons[0].contains("publickey_ver 2"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("1701 | ") && reasons[1].contains("not JSON"),
        "{reasons:?}"
    );
    let handoffs = scalar(
        &db,
        "SELECT COUNT(*) FROM huixi_alerts WHERE kind IN ('sensitive', 'handoff')",
    )
    .await;
    assert!(handoffs >= 24, "{handoffs} alerts of 25 hand-off messages");
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM huixi_alerts WHERE session_id = '' AND kind <> 'ingest.lag'"
        )
        .await,
        0,
        "every real-time alert was adopted by its session"
    );
    let location = rows_of(&db, &["SELECT location FROM huixi_media"]).await;
    let path = location[0]
        .strip_prefix("file://")
        .expect("a file location");
    assert_eq!(
        std::fs::read(path).unwrap(),
        image,
        "the image arrived whole"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_item_of_a_rotated_key_is_quarantined_until_its_key_is_added_and_replayed() {
    let root = tempfile::tempdir().unwrap();
    let sdk = standin(root.path());
    let mut archive = Archive::new(&root.path().join("wecom"), 2);
    let t = chrono::Utc::now().timestamp_millis() - 3_600_000;
    archive.text("old-1", "staff1", "wmcust1", t, "您好");
    // After the rotation in the WeCom admin: new items are sealed for key version 2.
    let m = |id: &str, text: &str| {
        serde_json::json!({"msgid": id, "action": "send", "from": "wmcust1", "tolist": ["staff1"],
            "msgtime": t + 1_000, "msgtype": "text", "text": {"content": text}})
        .to_string()
    };
    archive.item("new-1", 2, &m("new-1", "我想了解一下价格"));
    archive.item("new-2", 2, &m("new-2", "加我微信"));
    archive.write();
    let db = sqlite_url(root.path());
    set_source(&db, root.path(), "acme", "wwacme", &[(1, &archive.pem(1))]);
    let (mut child, _) = serve(
        &db,
        &sdk,
        &root.path().join("wecom"),
        &root.path().join("media"),
    );
    eventually(60, "the page stored", || {
        let db = db.clone();
        async move {
            (scalar(&db, "SELECT cursor_seq FROM huixi_wecom_sources").await == 3).then_some(())
        }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM huixi_messages").await, 1);
    let listed = stdout_json(&huixi(&[
        "ingest",
        "quarantine",
        "list",
        "--tenant",
        "acme",
        "--json",
        "--db",
        &db,
    ]));
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed[0]["reason"]
        .as_str()
        .unwrap()
        .contains("publickey_ver 2"));

    // The key ring gets version 2 beside version 1; the replay stores both items, alert included.
    set_source(
        &db,
        root.path(),
        "acme",
        "wwacme",
        &[(1, &archive.pem(1)), (2, &archive.pem(2))],
    );
    let out = huixi(&[
        "ingest",
        "quarantine",
        "replay",
        "--tenant",
        "acme",
        "--db",
        &db,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 items stored, 0 still"));
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM huixi_messages").await, 3);
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM huixi_quarantine WHERE replayed_at IS NULL"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM huixi_alerts WHERE msgid = 'new-2'"
        )
        .await,
        1,
        "the replayed hand-off raised its alert"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_10001_is_retried_and_a_wrong_secret_stops_only_its_tenant() {
    let root = tempfile::tempdir().unwrap();
    let sdk = standin(root.path());
    let mut archive = Archive::new(&root.path().join("wecom"), 1);
    let t = chrono::Utc::now().timestamp_millis() - 3_600_000;
    for i in 0..5 {
        archive.text(&format!("m{i}"), "staff1", "wmcust1", t + i, "您好");
    }
    archive.write();
    // WeCom's network error on the first page request.
    archive.set("fail_next", "10001");
    let db = sqlite_url(root.path());
    set_source(&db, root.path(), "good", "wwgood", &[(1, &archive.pem(1))]);
    set_source(
        &db,
        root.path(),
        "wrong",
        "badcorp",
        &[(1, &archive.pem(1))],
    );
    // A lag limit of two seconds, so that the stopped source is seen lagging within the test.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    sqlx::query("UPDATE huixi_wecom_sources SET lag_alert_secs = 2 WHERE tenant = 'wrong'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    // And a source whose secret was sealed with a master key this deployment does not have.
    set_source(
        &db,
        root.path(),
        "sealed",
        "wwsealed",
        &[(1, &archive.pem(1))],
    );
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    sqlx::query("UPDATE huixi_wecom_sources SET secret = 'enc:v1:00112233445566778899aabbccddeeff' WHERE tenant = 'sealed'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (mut child, _) = serve(
        &db,
        &sdk,
        &root.path().join("wecom"),
        &root.path().join("media"),
    );
    let db2 = db.clone();
    eventually(60, "the good tenant pulled after the retry, the other stopped", || {
        let db = db2.clone();
        async move {
            let good = scalar(&db, "SELECT COUNT(*) FROM huixi_messages WHERE tenant = 'good'").await;
            let stopped = scalar(&db, "SELECT COUNT(*) FROM huixi_wecom_sources WHERE tenant = 'wrong' AND stopped IS NOT NULL").await;
            let lag = scalar(&db, "SELECT COUNT(*) FROM huixi_alerts WHERE tenant = 'wrong' AND kind = 'ingest.lag'").await;
            (good == 5 && stopped == 1 && lag == 1).then_some(())
        }
    })
    .await;
    // The lag is raised once per stall, not every second; the tenant that pulls is not lagging.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM huixi_alerts WHERE kind = 'ingest.lag'"
        )
        .await,
        1
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !root.path().join("wecom/fail_next").exists(),
        "the 10001 was served"
    );
    let why = rows_of(
        &db,
        &["SELECT stopped FROM huixi_wecom_sources WHERE tenant = 'wrong'"],
    )
    .await;
    assert!(why[0].contains("10004"), "{why:?}");
    let shown = huixi(&["ingest", "wecom", "show", "--tenant", "sealed", "--db", &db]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("does not open"),
        "the unreadable source says why: {shown}"
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM huixi_messages WHERE tenant = 'sealed'"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM huixi_alerts WHERE tenant = 'wrong' AND kind = 'ingest.stopped'"
        )
        .await,
        1
    );
    // The secret never reaches the store in clear when a master key is set; without one it is
    // kept as given, and never printed by `ingest wecom show`.
    let shown = huixi(&["ingest", "wecom", "show", "--tenant", "good", "--db", &db]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("\"cursor\": 5") && !shown.contains("the-archive-secret"),
        "{shown}"
    );
}

/// WeCom's msgaudit_notify signature: SHA-1 of the sorted token, timestamp, nonce and payload.
fn wecom_signature(token: &str, timestamp: &str, nonce: &str, encrypted: &str) -> String {
    use sha1::Digest;
    let mut parts = [token, timestamp, nonce, encrypted];
    parts.sort_unstable();
    hex::encode(sha1::Sha1::digest(parts.concat().as_bytes()))
}

#[tokio::test(flavor = "multi_thread")]
async fn msgaudit_notify_signed_by_wecom_pulls_at_once_and_a_forged_one_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let sdk = standin(root.path());
    let mut archive = Archive::new(&root.path().join("wecom"), 1);
    let t = chrono::Utc::now().timestamp_millis() - 3_600_000;
    archive.text("m1", "staff1", "wmcust1", t, "您好");
    archive.write();
    let db = sqlite_url(root.path());
    set_source(&db, root.path(), "acme", "wwacme", &[(1, &archive.pem(1))]);
    // Pulled once an hour only, and at once when WeCom calls back.
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db).await.unwrap();
    sqlx::query("UPDATE huixi_wecom_sources SET interval_secs = 3600, notify_token = 'cbtoken'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (mut child, base) = serve(
        &db,
        &sdk,
        &root.path().join("wecom"),
        &root.path().join("media"),
    );
    let db2 = db.clone();
    eventually(30, "the first pull", || {
        let db = db2.clone();
        async move {
            (scalar(&db, "SELECT cursor_seq FROM huixi_wecom_sources").await == 1).then_some(())
        }
    })
    .await;
    archive.text("m2", "wmcust1", "staff1", t + 1_000, "加我微信");
    archive.write();
    let http = reqwest::Client::new();
    let xml = "<xml><ToUserName><![CDATA[wwacme]]></ToUserName><Encrypt><![CDATA[ENCRYPTEDPAYLOAD]]></Encrypt><AgentID><![CDATA[2000004]]></AgentID></xml>";
    let forged = http
        .post(format!(
            "{base}/v1/wecom/notify/acme?msg_signature=0000&timestamp=1700000000&nonce=n1"
        ))
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let signature = wecom_signature("cbtoken", "1700000000", "n1", "ENCRYPTEDPAYLOAD");
    let signed = http
        .post(format!(
            "{base}/v1/wecom/notify/acme?msg_signature={signature}&timestamp=1700000000&nonce=n1"
        ))
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    assert_eq!(signed.text().await.unwrap(), "success");
    let db2 = db.clone();
    // The lag of the source, for dashboards: about an hour behind (the archive's last message).
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lag: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("huixi_ingest_lag_seconds{tenant=\"acme\"} "))
        .unwrap_or_else(|| panic!("no lag gauge in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!((3_500.0..3_700.0).contains(&lag), "lag {lag} s");
    eventually(10, "the pull the callback asked for", || {
        let db = db2.clone();
        async move {
            (scalar(&db, "SELECT cursor_seq FROM huixi_wecom_sources").await == 2).then_some(())
        }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_never_pull_one_tenant_at_the_same_time() {
    let root = tempfile::tempdir().unwrap();
    let sdk = standin(root.path());
    let mut archive = Archive::new(&root.path().join("wecom"), 1);
    let t = chrono::Utc::now().timestamp_millis() - 3_600_000;
    for i in 0..3_500 {
        archive.text(
            &format!("m{i:05}"),
            "staff1",
            &format!("wmc{:03}", i % 50),
            t + i,
            "您好",
        );
    }
    archive.write();
    // Slow pages, so that two pullers at once would overlap in the log.
    archive.set("page_delay_ms", "150");
    let db = sqlite_url(root.path());
    set_source(&db, root.path(), "acme", "wwacme", &[(1, &archive.pem(1))]);
    let wecom = root.path().join("wecom");
    let (mut a, _) = serve(&db, &sdk, &wecom, &root.path().join("media-a"));
    let (mut b, _) = serve(&db, &sdk, &wecom, &root.path().join("media-b"));
    let db2 = db.clone();
    eventually(90, "the archive pulled", || {
        let db = db2.clone();
        async move {
            (scalar(&db, "SELECT cursor_seq FROM huixi_wecom_sources").await == 3_500).then_some(())
        }
    })
    .await;
    // A few more rounds, taken by whichever replica gets the lease.
    tokio::time::sleep(Duration::from_secs(4)).await;
    a.kill().unwrap();
    b.kill().unwrap();
    a.wait().unwrap();
    b.wait().unwrap();
    let log = std::fs::read_to_string(wecom.join("calls.log")).unwrap();
    let calls: Vec<(u32, i64, i64)> = log
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect();
    assert!(calls.len() >= 4, "{log}");
    for (i, x) in calls.iter().enumerate() {
        for y in &calls[i + 1..] {
            let overlap = x.1 < y.2 && y.1 < x.2;
            assert!(
                !(overlap && x.0 != y.0),
                "two replicas pulled at once: {x:?} {y:?}"
            );
        }
    }
    assert_eq!(
        scalar(&db, "SELECT COUNT(*) FROM huixi_messages").await,
        3_500
    );
}

/// A staff member sends a customer an image of a personal WeChat payment code: the puller fetches
/// its bytes, reads the code, and the session's analysis raises a high-severity 飞单 alert and
/// finding citing the image, though the image had nothing to say when it arrived.
#[tokio::test(flavor = "multi_thread")]
async fn a_payment_code_in_an_image_is_read_from_its_bytes_and_is_a_side_deal() {
    let root = tempfile::tempdir().unwrap();
    let sdk = standin(root.path());
    let start = chrono::Utc::now().timestamp_millis() - 2 * 3_600_000;
    let dir = root.path().join("t");
    let mut a = Archive::new(&dir.join("wecom"), 1);
    // tests/fixtures/qr_payment.png: a QR code of "wxp://f2f0pQxAbCdEfGhIjKlMnOpQrStUv", drawn by
    // the unit tests' `png_of` in src/sensitive/qr.rs.
    let image = std::fs::read(fixture("qr_payment.png")).unwrap();
    std::fs::write(dir.join("wecom/media/file-qr-1"), &image).unwrap();
    let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&image));
    a.text("q1", "wmcust1", "staff1", start, "能便宜点吗");
    let m = serde_json::json!({
        "msgid": "q2", "action": "send", "from": "staff1", "tolist": ["wmcust1"], "roomid": "",
        "msgtime": start + 60_000, "msgtype": "image",
        "image": {"md5sum": md5, "filesize": image.len(), "sdkfileid": "file-qr-1"},
    });
    a.item("q2", 1, &m.to_string());
    a.text(
        "q3",
        "staff1",
        "wmcust1",
        start + 120_000,
        "扫这个码付，便宜两百",
    );
    a.write();
    let db = sqlite_url(&dir);
    set_source(&db, &dir, "acme", "wwacme", &[(1, &a.pem(1))]);
    let (mut child, _) = serve(&db, &sdk, &dir.join("wecom"), &dir.join("media"));
    let found = {
        let db = db.clone();
        eventually(
            120,
            "the image's code raised its alert in the session",
            || {
                let db = db.clone();
                async move {
                    let rows = rows_of(
                        &db,
                        &[
                            "SELECT session_id, category, severity, word FROM huixi_alerts \
                       WHERE msgid = 'q2' AND kind = 'qrcode' AND session_id <> ''",
                        ],
                    )
                    .await;
                    (!rows.is_empty()).then_some(rows)
                }
            },
        )
        .await
    };
    let finding = {
        let db = db.clone();
        eventually(60, "the 飞单 finding", || {
            let db = db.clone();
            async move {
                let rows = rows_of(
                    &db,
                    &["SELECT payload, evidence FROM huixi_findings WHERE kind = 'side_deal'"],
                )
                .await;
                (!rows.is_empty()).then_some(rows)
            }
        })
        .await
    };
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        found[0].contains("飞单") && found[0].contains("high"),
        "{found:?}"
    );
    assert!(found[0].contains("微信收款码"), "{found:?}");
    assert!(
        finding[0].contains("q2") && finding[0].contains("staff1"),
        "{finding:?}"
    );
    let qr = rows_of(&db, &["SELECT qr FROM huixi_media WHERE msgid = 'q2'"]).await;
    assert!(qr[0].contains("wxp://"), "{qr:?}");
}
