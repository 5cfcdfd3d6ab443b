//! A 2xx means durable: SIGKILL right after a burst of acknowledged writes loses none.

use crate::harness::{parts, Server};
use serde_json::json;
use std::sync::Arc;

#[test]
fn acknowledged_writes_survive_sigkill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = Arc::new(Server::start_in(tmp.path(), &[]));
    let mut handles = Vec::new();
    for t in 0..4 {
        let s = s.clone();
        handles.push(std::thread::spawn(move || {
            let mut acked = Vec::new();
            for i in 0..50 {
                let (st, u) = parts(s.post(
                    "/scim/v2/Users",
                    &json!({
                    "schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("durable-{t}-{i}")}),
                ));
                if st == 201 {
                    acked.push(u["id"].as_str().expect("id").to_string());
                }
            }
            acked
        }));
    }
    let acked: Vec<String> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(acked.len(), 200);
    match Arc::try_unwrap(s) {
        Ok(server) => server.kill(),
        Err(_) => panic!("server still shared"),
    }
    let s = Server::start_in(tmp.path(), &[]);
    let (_, all) = parts(s.get("/scim/v2/Users?count=0").send().expect("count"));
    assert_eq!(all["totalResults"], 200);
    for id in &acked {
        let resp = s.get(&format!("/scim/v2/Users/{id}")).send().expect("get");
        assert_eq!(resp.status().as_u16(), 200, "acknowledged user {id} lost");
    }
}
