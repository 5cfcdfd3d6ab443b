//! Discovery endpoints are generated from the registry and reject writes.

use crate::harness::{assert_scim_error, parts, Server};
use serde_json::json;

#[test]
fn discovery_documents() {
    let s = Server::start();
    let (st, spc) = parts(s.get("/scim/v2/ServiceProviderConfig").send().expect("spc"));
    assert_eq!(st, 200);
    assert_eq!(spc["patch"]["supported"], true);
    assert_eq!(spc["filter"]["maxResults"], 200);
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["bulk"]["maxOperations"], 30);
    assert_eq!(spc["bulk"]["maxPayloadSize"], 3_072_000);
    let (_, schemas) = parts(s.get("/scim/v2/Schemas").send().expect("schemas"));
    let ids: Vec<&str> = schemas["Resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:User"));
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:core:2.0:Group"));
    assert!(ids.contains(&"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"));
    let (st, user) = parts(
        s.get("/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
            .send()
            .expect("schema"),
    );
    assert_eq!(st, 200);
    let user_name = user["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .find(|a| a["name"] == "userName")
        .expect("userName")
        .clone();
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["required"], true);
    let (st, rt) = parts(s.get("/scim/v2/ResourceTypes/User").send().expect("rt"));
    assert_eq!(st, 200);
    assert_eq!(rt["endpoint"], "/Users");
    let (_, rts) = parts(s.get("/scim/v2/ResourceTypes").send().expect("rts"));
    assert_eq!(
        rts["totalResults"], 4,
        "User, Group, FidoDevice, Fido2Device"
    );
}

#[test]
fn unknown_things_are_404_and_writes_to_discovery_are_405() {
    let s = Server::start();
    assert_scim_error(
        s.get("/scim/v2/Schemas/urn:nope").send().expect("get"),
        404,
        None,
    );
    assert_scim_error(
        s.get("/scim/v2/ResourceTypes/Nope").send().expect("get"),
        404,
        None,
    );
    assert_scim_error(s.get("/scim/v2/Nope").send().expect("get"), 404, None);
    assert_scim_error(
        s.get("/scim/v2/Users/no-such-id").send().expect("get"),
        404,
        None,
    );
    assert_scim_error(s.get("/elsewhere").send().expect("get"), 404, None);
    for path in [
        "/scim/v2/ServiceProviderConfig",
        "/scim/v2/Schemas",
        "/scim/v2/ResourceTypes",
    ] {
        assert_scim_error(s.post(path, &json!({})), 405, None);
        assert_scim_error(s.put(path, &json!({})), 405, None);
    }
    assert_scim_error(
        s.delete("/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
            .send()
            .expect("delete"),
        405,
        None,
    );
}
