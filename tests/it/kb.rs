//! The tenant knowledge base on Qdrant Edge: Chinese search, no-op re-ingest, replacement and removal,
//! tenant isolation, and analysis that hands the matching chunks to the agents and records them.

use std::path::Path;

use serde_json::Value;

use crate::helpers::*;
use crate::mock_llm::{system_text, Behaviour, Mock};

fn docs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("product.md"),
        "# 会析CRM产品手册\n\n会析CRM帮助销售团队管理客户、商机和合同。\n\n\
         ## 价格\n\n标准版每个账号每年980元，专业版每个账号每年1680元，二十个账号以上九折。\n\n\
         ## 发票\n\n支持开具增值税专用发票和普通发票，在财务页面提交开票申请，三个工作日内开出。\n\n\
         ## 数据迁移\n\n提供从Excel和其他CRM系统的免费数据迁移服务。\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("faq.jsonl"),
        "{\"q\":\"能试用吗\",\"a\":\"可以申请14天免费试用\"}\n{\"q\":\"支持手机吗\",\"a\":\"有iOS和安卓客户端\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("competitors.csv"),
        "竞品,对比要点\n销售易,我们的实施周期更短\n纷享销客,我们的报表更灵活\n",
    )
    .unwrap();
}

fn kb(args: &[&str]) -> Value {
    stdout_json(&huixi(args))
}

#[test]
fn chinese_search_reingest_replace_remove_and_isolation() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs_dir = dir.path().join("docs");
    docs(&docs_dir);
    let d = data.to_str().unwrap();
    let src = docs_dir.to_str().unwrap();
    let first = kb(&[
        "kb",
        "ingest",
        src,
        "--tenant",
        "acme",
        "--data-dir",
        d,
        "--json",
    ]);
    let statuses: Vec<&str> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["added"; 3], "{first:#}");

    let search = |tenant: &str, q: &str| {
        kb(&[
            "kb",
            "search",
            q,
            "--tenant",
            tenant,
            "--data-dir",
            d,
            "--json",
        ])
    };
    let hits = search("acme", "发票怎么开");
    assert!(
        hits[0]["text"].as_str().unwrap().contains("增值税专用发票"),
        "{hits:#}"
    );
    assert_eq!(hits[0]["heading"], "会析CRM产品手册 > 发票");
    let hits = search("acme", "专业版多少钱一年");
    assert!(
        hits[0]["text"].as_str().unwrap().contains("1680元"),
        "{hits:#}"
    );
    let hits = search("acme", "和销售易比有什么优势");
    assert!(
        hits[0]["text"].as_str().unwrap().contains("实施周期更短"),
        "a CSV row is its own chunk: {hits:#}"
    );
    assert!(hits[0]["id"].as_str().unwrap().starts_with("kb_"));

    // Tenant B searching the same words gets nothing from tenant A.
    assert_eq!(search("other", "发票怎么开").as_array().unwrap().len(), 0);

    // Re-ingesting unchanged files changes nothing.
    let again = kb(&[
        "kb",
        "ingest",
        src,
        "--tenant",
        "acme",
        "--data-dir",
        d,
        "--json",
    ]);
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "unchanged"),
        "{again:#}"
    );
    // A changed file replaces its chunks: the old text is gone.
    std::fs::write(
        docs_dir.join("faq.jsonl"),
        "{\"q\":\"能试用吗\",\"a\":\"可以申请30天免费试用\"}\n",
    )
    .unwrap();
    let changed = kb(&[
        "kb",
        "ingest",
        src,
        "--tenant",
        "acme",
        "--data-dir",
        d,
        "--json",
    ]);
    let faq = changed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"].as_str().unwrap().ends_with("faq.jsonl"))
        .unwrap();
    assert_eq!(
        (faq["status"].as_str(), faq["chunks"].as_u64()),
        (Some("replaced"), Some(1))
    );
    let hits = search("acme", "试用多久");
    assert!(hits[0]["text"].as_str().unwrap().contains("30天"));
    assert!(!hits.to_string().contains("14天"));
    // A deleted file can be removed.
    std::fs::remove_file(docs_dir.join("competitors.csv")).unwrap();
    let out = huixi(&[
        "kb",
        "remove",
        docs_dir.join("competitors.csv").to_str().unwrap(),
        "--tenant",
        "acme",
        "--data-dir",
        d,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!search("acme", "销售易").to_string().contains("实施周期"));
}

#[tokio::test(flavor = "multi_thread")]
async fn analysis_gives_agents_the_matching_chunks_and_records_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs_dir = dir.path().join("docs");
    docs(&docs_dir);
    kb(&[
        "kb",
        "ingest",
        docs_dir.to_str().unwrap(),
        "--tenant",
        "default",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
    ]);
    let mock = Mock::start(Behaviour::Valid).await;
    let report = stdout_json(
        &huixi_async(vec![
            "analyze".into(),
            sample_archive().display().to_string(),
            "--db".into(),
            sqlite_url(dir.path()),
            "--json".into(),
            "--llm-base-url".into(),
            mock.base_url(),
            "--llm-model".into(),
            "mock-model".into(),
            "--data-dir".into(),
            data.display().to_string(),
        ])
        .await,
    );
    let results = report["results"].as_array().unwrap();
    let cited: Vec<&str> = results
        .iter()
        .flat_map(|r| r["knowledge"].as_array().into_iter().flatten())
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !cited.is_empty(),
        "sessions record the chunks their agents saw"
    );
    // The chunks recorded are the ones in the prompts of the agents that declare retrieval.
    let prompts: Vec<String> = mock.bodies().iter().map(system_text).collect();
    for id in &cited {
        assert!(id.starts_with("kb_"));
        assert!(
            prompts.iter().any(|p| p.contains(id)),
            "{id} was in a prompt"
        );
    }
    // The price conversation got the price chunk.
    let sale = results
        .iter()
        .find(|r| {
            r["participants"]
                .as_array()
                .unwrap()
                .contains(&"wmCustA".into())
        })
        .unwrap();
    let ids: Vec<&str> = sale["knowledge"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let price = kb(&[
        "kb",
        "search",
        "专业版每个账号每年1680元",
        "--tenant",
        "default",
        "--data-dir",
        data.to_str().unwrap(),
        "--json",
    ]);
    assert!(ids.contains(&price[0]["id"].as_str().unwrap()), "{ids:?}");
}

/// The production path, on a real Qdrant server when one is reachable (`HUIXI_TEST_QDRANT_URL`,
/// default http://127.0.0.1:6334, Qdrant's gRPC port). None runs on this project's machines; the test
/// says so and passes, as README explains how to run one.
#[test]
fn qdrant_server_path_when_a_server_is_reachable() {
    let url =
        std::env::var("HUIXI_TEST_QDRANT_URL").unwrap_or_else(|_| "http://127.0.0.1:6334".into());
    let addr = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(1)).is_ok()
        });
    if !reachable {
        eprintln!(
            "SKIPPED qdrant_server_path_when_a_server_is_reachable: no Qdrant server at {url} \
             (docker run -p 6333:6333 -p 6334:6334 qdrant/qdrant, or set HUIXI_TEST_QDRANT_URL)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let docs_dir = dir.path().join("docs");
    docs(&docs_dir);
    let d = dir.path().join("data");
    // Tenants of their own, so runs against a shared server never see each other's chunks.
    let a = format!("it-a-{}", std::process::id());
    let b = format!("it-b-{}", std::process::id());
    let args = |extra: &[&str]| -> Value {
        let mut all: Vec<&str> = extra.to_vec();
        all.extend([
            "--data-dir",
            d.to_str().unwrap(),
            "--qdrant-url",
            &url,
            "--json",
        ]);
        kb(&all)
    };
    let first = args(&["kb", "ingest", docs_dir.to_str().unwrap(), "--tenant", &a]);
    assert!(
        first
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "added"),
        "{first:#}"
    );
    let hits = args(&["kb", "search", "发票怎么开", "--tenant", &a]);
    assert!(
        hits[0]["text"].as_str().unwrap().contains("增值税专用发票"),
        "{hits:#}"
    );
    assert_eq!(
        args(&["kb", "search", "发票怎么开", "--tenant", &b])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let again = args(&["kb", "ingest", docs_dir.to_str().unwrap(), "--tenant", &a]);
    assert!(again
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "unchanged"));
}
