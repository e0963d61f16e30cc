//! Roles and permissions, as users meet them over WebSocket: who may change
//! whom (each role against each operation), the room's last owner, and
//! changes that apply to sockets already in the room from their next frame.

use std::time::Duration;

use chat_client::{Client, ClientEncoding, ClientError, ClientOptions, Messages, RoomApi};
use chat_tests::{cluster::ADMIN_TOKEN, Cluster, ClusterOptions, STEP};
use futures::future::join_all;

fn client(cluster: &Cluster, gateway: usize, user: &str) -> (Client, Messages) {
    let options = ClientOptions::new(
        vec![cluster.gateway(gateway).ws_url()],
        cluster.token(user),
        ClientEncoding::Json,
    )
    .backoff(Duration::from_millis(50), Duration::from_secs(1));
    Client::connect(options)
}

fn room_api(cluster: &Cluster) -> RoomApi {
    RoomApi::new(cluster.gateway(0).url(""), ADMIN_TOKEN)
}

/// The error code of a refused call ("ok" when it was applied).
fn outcome<T>(result: Result<T, ClientError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => e.code().map_or_else(|| e.to_string(), str::to_owned),
    }
}

/// Each room of the matrix: owners `own` and `own2`, admin `adm`, members
/// `mem` and `tgt` (the target of changes to a member).
async fn staffed_room(admin: &RoomApi, room: &str) {
    admin
        .create_room_owned(room, &["own", "own2"], &["adm", "mem", "tgt", "tadm"])
        .await
        .unwrap();
    for user in ["adm", "tadm"] {
        admin
            .set_access(room, user, Some("admin"), &[], &[])
            .await
            .unwrap();
    }
}

#[derive(Clone, Copy, Debug)]
enum Operation {
    AddMember,
    RemoveMember,
    RemoveAdmin,
    RemoveOwner,
    PromoteToAdmin,
    PromoteToOwner,
    DemoteAdmin,
    DemoteOwner,
    RevokeSend,
    GrantRemove,
    Leave,
}

impl Operation {
    async fn run(self, client: &Client, room: &str, me: &str) -> Result<(), ClientError> {
        let set = |user: &'static str, role: Option<&'static str>, grant, revoke| {
            client.set_access(room, user, role, grant, revoke)
        };
        match self {
            Self::AddMember => client.add_member(room, "new").await.map(drop),
            Self::RemoveMember => client.remove_member(room, "tgt").await.map(drop),
            Self::RemoveAdmin => client.remove_member(room, "tadm").await.map(drop),
            Self::RemoveOwner => client.remove_member(room, "own2").await.map(drop),
            Self::PromoteToAdmin => set("tgt", Some("admin"), &[], &[]).await.map(drop),
            Self::PromoteToOwner => set("tgt", Some("owner"), &[], &[]).await.map(drop),
            Self::DemoteAdmin => set("tadm", Some("member"), &[], &[]).await.map(drop),
            Self::DemoteOwner => set("own2", Some("admin"), &[], &[]).await.map(drop),
            Self::RevokeSend => set("tgt", None, &[], &["can_send_messages"])
                .await
                .map(drop),
            Self::GrantRemove => set("tgt", None, &["can_remove_members"], &[])
                .await
                .map(drop),
            Self::Leave => client.remove_member(room, me).await.map(drop),
        }
    }
}

/// Every role against every operation, each in a fresh room: what is
/// allowed is applied (one event more in the room), what is not is
/// refused with `forbidden` and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_do_what_the_rules_say_and_nothing_more() {
    use Operation::*;
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    let admin = room_api(&cluster);
    // (operation, as owner, as admin, as member)
    let table = [
        (AddMember, "ok", "ok", "forbidden"),
        (RemoveMember, "ok", "ok", "forbidden"),
        (RemoveAdmin, "ok", "forbidden", "forbidden"),
        (RemoveOwner, "ok", "forbidden", "forbidden"),
        (PromoteToAdmin, "ok", "ok", "forbidden"),
        (PromoteToOwner, "ok", "forbidden", "forbidden"),
        (DemoteAdmin, "ok", "forbidden", "forbidden"),
        (DemoteOwner, "ok", "forbidden", "forbidden"),
        (RevokeSend, "ok", "ok", "forbidden"),
        (GrantRemove, "ok", "ok", "forbidden"),
        (Leave, "ok", "ok", "ok"),
    ];
    let actors = [("own", 0), ("adm", 1), ("mem", 2)];
    let clients: Vec<(Client, Messages)> = actors
        .iter()
        .map(|(user, i)| client(&cluster, i % 2, user))
        .collect();
    let cells = table.iter().enumerate().flat_map(|(row, cell)| {
        let expected = [cell.1, cell.2, cell.3];
        actors
            .iter()
            .map(move |&(actor, i)| (row, cell.0, actor, i, expected[i]))
    });
    let runs = cells.map(|(row, op, actor, i, expected)| {
        let (admin, cluster, client) = (&admin, &cluster, &clients[i].0);
        async move {
            let room = format!("m{row}-{actor}");
            staffed_room(admin, &room).await;
            let before = cluster.stored(&room).await.len();
            let got = outcome(op.run(client, &room, actor).await);
            let after = cluster.stored(&room).await.len();
            let changed = if got == "ok" { 1 } else { 0 };
            (op, actor, expected, got, after - before == changed)
        }
    });
    let results = join_all(runs).await;
    let wrong: Vec<_> = results
        .iter()
        .filter(|(_, _, expected, got, events_ok)| got != expected || !events_ok)
        .collect();
    assert!(
        wrong.is_empty(),
        "cells that broke the rules (op, actor, expected, got, one event iff applied): {wrong:?}"
    );
}

/// A room's last owner cannot leave, be removed (not even by the trusted
/// backend) or demote themselves: `conflict`, and nothing changes. With a
/// second owner, the first may go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_owner_stays() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    let admin = room_api(&cluster);
    admin
        .create_room_owned("solo", &["own"], &["mem"])
        .await
        .unwrap();
    let (own, _messages) = client(&cluster, 0, "own");
    assert_eq!(outcome(own.remove_member("solo", "own").await), "conflict");
    assert_eq!(
        outcome(own.set_access("solo", "own", Some("admin"), &[], &[]).await),
        "conflict"
    );
    match admin.remove_member("solo", "own").await {
        Err(chat_client::RoomApiError::Refused { status, body }) => {
            assert_eq!(status, 409, "{body}");
            assert!(body.contains("conflict"), "{body}");
        }
        other => panic!("removing the last owner must be refused, got {other:?}"),
    }
    assert!(cluster.stored("solo").await.is_empty(), "nothing changed");

    own.set_access("solo", "mem", Some("owner"), &[], &[])
        .await
        .unwrap();
    own.remove_member("solo", "own").await.unwrap();
    let kinds: Vec<String> = cluster
        .postgres
        .client()
        .await
        .query(
            "SELECT kind || ':' || body FROM messages WHERE room_id = 'solo' ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["role_changed:mem", "member_left:own"]);
}

/// Bad commands get a clear code and change nothing: an unknown room, a
/// change to someone who is not a member, an unknown role or flag, a
/// command from someone who is not in the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_member_commands_are_refused_with_a_code() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    let admin = room_api(&cluster);
    admin
        .create_room_owned("hall", &["own"], &["mem"])
        .await
        .unwrap();
    let (own, _m1) = client(&cluster, 0, "own");
    let (stranger, _m2) = client(&cluster, 0, "zed");
    let cases = [
        (
            "unknown room",
            outcome(own.add_member("nowhere", "mem").await),
            "not_found",
        ),
        (
            "not a member",
            outcome(own.set_access("hall", "zed", Some("admin"), &[], &[]).await),
            "not_found",
        ),
        (
            "unknown role",
            outcome(own.set_access("hall", "mem", Some("king"), &[], &[]).await),
            "invalid_argument",
        ),
        (
            "unknown flag",
            outcome(own.set_access("hall", "mem", None, &["can_fly"], &[]).await),
            "invalid_argument",
        ),
        (
            "bad user id",
            outcome(own.add_member("hall", "no spaces").await),
            "invalid_argument",
        ),
        (
            "stranger",
            outcome(stranger.remove_member("hall", "mem").await),
            "forbidden",
        ),
    ];
    for (case, got, expected) in &cases {
        assert_eq!(got, expected, "{case}");
    }
    assert!(cluster.stored("hall").await.is_empty(), "nothing changed");
}

/// A member whose `can_send_messages` is revoked while their socket is in
/// the room (on the other gateway) is refused on their next send, and
/// sends again once it is granted back; a member made admin may add
/// members at once. Each change is an event everyone sees in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_permission_applies_to_the_next_frame_on_every_gateway() {
    let cluster = Cluster::start(ClusterOptions::new(2, 1)).await;
    let admin = room_api(&cluster);
    admin
        .create_room_owned("desk", &["own"], &["mem"])
        .await
        .unwrap();
    let (own, mut own_messages) = client(&cluster, 0, "own");
    let (mem, _mem_messages) = client(&cluster, 1, "mem");
    own.join("desk", None).await.unwrap();
    mem.join("desk", None).await.unwrap();
    mem.send("desk", "first").await.unwrap();

    let revoked = own
        .set_access("desk", "mem", None, &[], &["can_send_messages"])
        .await
        .unwrap();
    let event = revoked.event.expect("a change is an event");
    assert_eq!(
        (event.kind.as_str(), event.member.as_str()),
        ("role_changed", "mem")
    );
    let access = event.access.expect("the event carries the new access");
    assert_eq!(access.role, "member");
    assert!(access.permissions.is_empty(), "{access:?}");
    let refused = mem
        .send("desk", "muted?")
        .await
        .expect_err("no longer allowed");
    assert_eq!(refused.code(), Some("forbidden"), "{refused}");

    own.set_access("desk", "mem", Some("admin"), &[], &[])
        .await
        .unwrap();
    mem.send("desk", "back").await.unwrap();
    mem.add_member("desk", "pal").await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 5 {
        match tokio::time::timeout(STEP, own_messages.recv()).await {
            Ok(Some(m)) => seen.push(format!("{}:{}{}", m.seq, m.kind, m.body)),
            other => panic!("own saw {seen:?}, then {other:?}"),
        }
    }
    assert_eq!(
        seen,
        [
            "1:first",
            "2:role_changed",
            "3:role_changed",
            "4:back",
            "5:member_joined"
        ]
    );
}

/// The store has the last word: a send that a gateway let through on
/// access it no longer had (here the flag is revoked in Postgres behind
/// every gateway's back, as a change still on its way to them would be) is
/// refused by the worker, answered `forbidden` rather than left to time
/// out, and takes no seq; the room goes on for everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_the_gateway_let_through_is_refused_by_the_store() {
    let cluster = Cluster::start(ClusterOptions::new(1, 1)).await;
    cluster.create_room("desk", &["mem", "other"]).await;
    let (mem, _) = client(&cluster, 0, "mem");
    let (other, _) = client(&cluster, 0, "other");
    mem.join("desk", None).await.unwrap();
    other.join("desk", None).await.unwrap();
    mem.send("desk", "first").await.unwrap();
    cluster
        .postgres
        .client()
        .await
        .execute(
            "UPDATE members SET permissions = 0 WHERE room_id = 'desk' AND user_id = 'mem'",
            &[],
        )
        .await
        .unwrap();
    // Well inside the gateway's ack timeout (10 s), after which it would
    // answer `timeout`.
    let refused = tokio::time::timeout(Duration::from_secs(5), mem.send("desk", "muted?"))
        .await
        .expect("answered before the ack timeout")
        .expect_err("the store refuses it");
    assert_eq!(refused.code(), Some("forbidden"), "{refused}");
    let after = other.send("desk", "still here").await.unwrap();
    assert_eq!(after.seq, 2, "the refusal took no seq");
    let bodies: Vec<String> = cluster
        .stored("desk")
        .await
        .into_iter()
        .map(|(_, _, _, body)| body)
        .collect();
    assert_eq!(bodies, ["first", "still here"]);
}
