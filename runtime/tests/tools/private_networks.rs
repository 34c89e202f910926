//! The private-network fence: loopback, private, link-local and the rest are refused in every
//! spelling, by name or by literal, unless the setting allows them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::time::Duration;

use runtime::tools::{AddressRule, ToolFailure, ToolOutcome};

use crate::helpers::{SECRET, ToolServer, endpoint, endpoint_with, invoker, request};

async fn refusal(url: &str) -> (AddressRule, IpAddr, String) {
    // A short timeout: a refusal is immediate, a connection attempt to 10.0.0.1 is not.
    let outcome = invoker(false)
        .invoke(&endpoint_with(url, SECRET, Duration::from_secs(2)), &request())
        .await;
    match outcome {
        ToolOutcome::Failed {
            failure: ToolFailure::PrivateNetwork { rule, address },
            detail,
        } => (rule, address, detail),
        other => panic!("{url} was not refused as a private network: {other:?}"),
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_call_time() {
    let server = ToolServer::start().await;

    let (rule, address, detail) = refusal(&format!("http://localhost:{}/echo", server.port)).await;

    assert_eq!(rule, AddressRule::Loopback);
    assert!(address.is_loopback(), "{address}");
    assert!(
        detail.starts_with(&format!("localhost resolves to {address}, a loopback address")),
        "{detail}"
    );
    assert!(detail.contains("rule loopback"), "{detail}");
    assert!(server.requests().is_empty(), "the tool server was reached");
}

#[tokio::test]
async fn loopback_literals_are_refused_in_every_spelling() {
    let server = ToolServer::start().await;
    let port = server.port;
    for (url, expected) in [
        (format!("http://127.0.0.1:{port}/echo"), "127.0.0.1"),
        (format!("http://[::1]:{port}/echo"), "::1"),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/echo"),
            "::ffff:127.0.0.1",
        ),
        (format!("http://2130706433:{port}/echo"), "127.0.0.1"),
    ] {
        let (rule, address, detail) = refusal(&url).await;
        assert_eq!(rule, AddressRule::Loopback, "{url}");
        assert_eq!(address, expected.parse::<IpAddr>().unwrap(), "{url}");
        assert!(
            detail.starts_with(&format!("the address {address} is a loopback address")),
            "{detail}"
        );
        assert!(detail.contains("tools may not call private networks"), "{detail}");
    }
    assert!(server.requests().is_empty(), "the tool server was reached");
}

#[tokio::test]
async fn the_cloud_metadata_address_is_refused_as_link_local() {
    let (rule, address, detail) = refusal("http://169.254.169.254/latest/meta-data/iam/").await;

    assert_eq!(rule, AddressRule::LinkLocal);
    assert_eq!(address, "169.254.169.254".parse::<IpAddr>().unwrap());
    assert!(detail.contains("cloud metadata"), "{detail}");
}

#[tokio::test]
async fn private_unspecified_and_ipv6_local_literals_are_refused() {
    for (url, expected) in [
        ("https://10.0.0.1/tool", AddressRule::Private),
        ("http://192.168.1.10:8080/tool", AddressRule::Private),
        ("http://100.64.0.1/tool", AddressRule::SharedAddressSpace),
        ("http://0.0.0.0/tool", AddressRule::Unspecified),
        ("http://[::]/tool", AddressRule::Unspecified),
        ("http://[fd00::1]/tool", AddressRule::UniqueLocal),
        ("http://[fe80::1]/tool", AddressRule::LinkLocal),
        ("http://[::ffff:10.0.0.1]/tool", AddressRule::Private),
        ("http://255.255.255.255/tool", AddressRule::Broadcast),
        ("http://224.0.0.1/tool", AddressRule::Multicast),
    ] {
        let (rule, _, _) = refusal(url).await;
        assert_eq!(rule, expected, "{url}");
    }
}

#[tokio::test]
async fn with_private_networks_allowed_the_same_local_server_is_reached() {
    let server = ToolServer::start().await;
    let port = server.port;
    let invoker = invoker(true);

    for url in [
        format!("http://localhost:{port}/text"),
        format!("http://127.0.0.1:{port}/text"),
    ] {
        let outcome = invoker.invoke(&endpoint(&url), &request()).await;
        assert!(
            matches!(outcome, ToolOutcome::Output { status: 200, .. }),
            "{url}: {outcome:?}"
        );
    }
    assert_eq!(server.paths(), ["/text", "/text"]);
}
