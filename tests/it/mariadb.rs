//! The same pipeline on this machine's MariaDB, the production store: each test gets a database of its
//! own, created here and dropped at the end.

use sqlx::Connection;

use crate::helpers::*;

const SERVER: &str = "mysql://root@127.0.0.1:3306";

/// A fresh, empty database; dropped when the guard goes.
pub struct Scratch {
    name: String,
}

impl Scratch {
    pub async fn new(tag: &str) -> Scratch {
        let name = format!("huixi_it_{tag}_{}", std::process::id());
        let mut conn = sqlx::MySqlConnection::connect(&format!("{SERVER}/test"))
            .await
            .expect("MariaDB at 127.0.0.1:3306 (root, no password): start it as README says");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
            .execute(&mut conn)
            .await
            .unwrap();
        Scratch { name }
    }

    pub fn url(&self) -> String {
        format!("{SERVER}/{}", self.name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside the test's runtime; a short-lived one cleans up.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) =
                    sqlx::MySqlConnection::connect(&format!("{SERVER}/test")).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

#[tokio::test]
async fn mariadb_store_gives_the_same_results_as_sqlite_and_reruns_change_nothing() {
    let scratch = Scratch::new("rerun").await;
    let url = scratch.url();
    let archive = sample_archive();
    let on_mysql = stdout_json(&huixi(&[
        "analyze",
        archive.to_str().unwrap(),
        "--db",
        &url,
        "--json",
    ]));
    let before = dump(&url).await;
    assert!(before.len() > 50);
    // Read again on request (a plain re-run skips the unchanged file), then skipped.
    let again = stdout_json(&huixi(&[
        "analyze",
        archive.to_str().unwrap(),
        "--db",
        &url,
        "--json",
        "--reread",
    ]));
    assert_eq!(dump(&url).await, before);
    assert_eq!(on_mysql, again);
    let skipped = stdout_json(&huixi(&[
        "analyze",
        archive.to_str().unwrap(),
        "--db",
        &url,
        "--json",
    ]));
    assert_eq!(dump(&url).await, before);
    assert_eq!(skipped["results"], serde_json::json!([]));
    assert_eq!(skipped["unchanged_files"].as_array().unwrap().len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let on_sqlite = stdout_json(&huixi(&[
        "analyze",
        archive.to_str().unwrap(),
        "--db",
        &sqlite_url(dir.path()),
        "--json",
    ]));
    assert_eq!(on_mysql["results"], on_sqlite["results"]);
    assert_eq!(on_mysql["alerts"], on_sqlite["alerts"]);
}

#[tokio::test]
async fn only_prefixed_tables_are_created_in_the_crm_database() {
    let scratch = Scratch::new("prefix").await;
    let url = scratch.url();
    let out = huixi(&[
        "analyze",
        fixture("mixed.jsonl").to_str().unwrap(),
        "--db",
        &url,
        "--json",
    ]);
    stdout_json(&out);
    let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(tables.len() >= 7, "{tables:?}");
    for t in &tables {
        assert!(t.starts_with("huixi_"), "unprefixed table {t}");
    }
    assert_eq!(count(&url, "huixi_rejected_lines").await, 4);
}
