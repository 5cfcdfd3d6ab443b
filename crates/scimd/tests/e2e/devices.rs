//! FidoDevices / Fido2Devices: search, update within the writable attributes,
//! delete, the userId parameter, and devices disappearing with their user.

use crate::harness::{assert_scim_error, parts, Server};
use serde_json::{json, Value};

fn make_user(s: &Server, name: &str) -> String {
    let (_, u) = parts(s.post(
        "/scim/v2/Users",
        &json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}),
    ));
    u["id"].as_str().expect("id").to_string()
}

fn enrol(s: &Server, endpoint: &str, body: Value) -> Value {
    let (st, d) = parts(s.post(&format!("/admin/devices/{endpoint}"), &body));
    assert_eq!(st, 201, "{d}");
    d
}

fn u2f(user: &str, platform: &str) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:FidoDevice"],
        "userId": user, "creationDate": "2024-01-02T03:04:05Z", "application": "https://idp.example.org",
        "counter": 7, "deviceKeyHandle": format!("kh-{platform}"), "deviceHashCode": "123",
        "deviceData": format!("{{\"platform\":\"{platform}\",\"os_name\":\"{platform}\",\"name\":\"phone\"}}"),
        "status": "active", "displayName": "My phone"})
}

#[test]
fn fido_devices_end_to_end() {
    let s = Server::start();
    let alice = make_user(&s, "alice");
    let bob = make_user(&s, "bob");
    let a1 = enrol(&s, "FidoDevices", u2f(&alice, "ios"));
    enrol(&s, "FidoDevices", u2f(&alice, "android"));
    enrol(&s, "FidoDevices", u2f(&bob, "ios"));
    let f2 = enrol(
        &s,
        "Fido2Devices",
        json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Fido2Device"],
        "userId": alice, "creationDate": "2024-01-02T03:04:05Z", "counter": 1,
        "status": "registered", "displayName": "Key"}),
    );

    // SCIM clients cannot create devices.
    assert_scim_error(s.post("/scim/v2/FidoDevices", &u2f(&alice, "x")), 405, None);
    // Enrolment needs an existing owner.
    let (st, _) = parts(s.post("/admin/devices/FidoDevices", &u2f("nobody", "ios")));
    assert_eq!(st, 404);

    // Search as in the seed, GET and POST .search, and userId narrowing.
    let (_, ios) = parts(
        s.get("/identity/restv1/scim/v2/FidoDevices")
            .query(&[("filter", "deviceData co \"ios\""), ("count", "10")])
            .send()
            .expect("search"),
    );
    assert_eq!(ios["totalResults"], 2, "{ios}");
    let (_, mine) = parts(
        s.get("/scim/v2/FidoDevices")
            .query(&[("userId", alice.as_str())])
            .send()
            .expect("search"),
    );
    assert_eq!(mine["totalResults"], 2);
    let (_, mine_ios) = parts(
        s.get("/scim/v2/FidoDevices")
            .query(&[
                ("userId", alice.as_str()),
                ("filter", "deviceData co \"ios\""),
            ])
            .send()
            .expect("search"),
    );
    assert_eq!(mine_ios["totalResults"], 1);
    let (_, posted) = parts(s.post("/scim/v2/FidoDevices/.search", &json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "counter gt 5"})));
    assert_eq!(posted["totalResults"], 3);

    // Writable attributes change; immutable ones are refused with 400 mutability.
    let path = format!("/scim/v2/FidoDevices/{}", a1["id"].as_str().expect("id"));
    let patch = |ops: Value| json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops});
    let (st, d) = parts(s.patch(
        &path,
        &patch(json!([
        {"op": "replace", "path": "displayName", "value": "Old phone"},
        {"op": "replace", "path": "status", "value": "compromised"}])),
    ));
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["status"], "compromised");
    for attr in [
        "userId",
        "counter",
        "deviceData",
        "application",
        "creationDate",
    ] {
        let value = if attr == "counter" {
            json!(99)
        } else if attr == "creationDate" {
            json!("2025-01-01T00:00:00Z")
        } else {
            json!("changed")
        };
        assert_scim_error(
            s.patch(
                &path,
                &patch(json!([{"op": "replace", "path": attr, "value": value}])),
            ),
            400,
            Some("mutability"),
        );
    }
    let mut put = d.clone();
    put["description"] = json!("described");
    let (st, d2) = parts(s.put(&path, &put));
    assert_eq!(st, 200, "{d2}");
    assert_eq!(d2["description"], "described");
    put["counter"] = json!(1000);
    assert_scim_error(s.put(&path, &put), 400, Some("mutability"));

    // Fido2: status within its canonical values, immutable counter.
    let f2_path = format!("/scim/v2/Fido2Devices/{}", f2["id"].as_str().expect("id"));
    let (st, _) = parts(s.patch(
        &f2_path,
        &patch(json!([{"op": "replace", "path": "status", "value": "pending"}])),
    ));
    assert_eq!(st, 200);
    assert_scim_error(
        s.patch(
            &f2_path,
            &patch(json!([{"op": "replace", "path": "counter", "value": 5}])),
        ),
        400,
        Some("mutability"),
    );

    // Root /.search includes devices.
    let (_, root) = parts(s.post("/scim/v2/.search", &json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "displayName pr"})));
    let kinds: Vec<&str> = root["Resources"]
        .as_array()
        .expect("r")
        .iter()
        .filter_map(|r| r["meta"]["resourceType"].as_str())
        .collect();
    assert!(
        kinds.contains(&"FidoDevice") && kinds.contains(&"Fido2Device"),
        "{kinds:?}"
    );

    // DELETE one device; deleting the user removes the rest of theirs.
    assert_eq!(
        s.delete(&path).send().expect("delete").status().as_u16(),
        204
    );
    assert_eq!(
        s.delete(&format!("/scim/v2/Users/{alice}"))
            .send()
            .expect("delete")
            .status()
            .as_u16(),
        204
    );
    let (_, left) = parts(s.get("/scim/v2/FidoDevices").send().expect("list"));
    assert_eq!(left["totalResults"], 1, "only bob's device is left: {left}");
    assert_eq!(left["Resources"][0]["userId"], bob.as_str());
    let (_, left2) = parts(s.get("/scim/v2/Fido2Devices").send().expect("list"));
    assert_eq!(left2["totalResults"], 0);
}

#[test]
fn cli_imports_devices() {
    let s = Server::start();
    let owner = make_user(&s, "owner");
    let file = s.data_dir.join("devices.jsonl");
    let lines = [u2f(&owner, "ios").to_string(), json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Fido2Device"],
        "userId": owner, "creationDate": "2024-01-02T03:04:05Z", "counter": 1, "status": "registered"}).to_string()];
    std::fs::write(&file, lines.join("\n")).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scimd"))
        .args(["devices", "import", "--in"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&s.data_dir)
        .args(s.database_args())
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, u2f_list) = parts(s.get("/scim/v2/FidoDevices").send().expect("list"));
    assert_eq!(u2f_list["totalResults"], 1);
    let (_, f2) = parts(
        s.get("/scim/v2/Fido2Devices")
            .query(&[("userId", owner.as_str())])
            .send()
            .expect("list"),
    );
    assert_eq!(f2["totalResults"], 1);
}
