//! A user's data through the room API's `/v1/users/{user}` (service token
//! only): exported as JSON lines, then erased. Two gateways, two workers,
//! a user in 100 rooms and more.

use chat_proto::v1::{client_frame, server_frame::Kind, Edit, History, React};
use chat_tests::{cluster::ADMIN_TOKEN, Cluster, ClusterOptions, Frames, STEP};
use serde_json::Value;

const ROOMS: usize = 100;

async fn call(
    cluster: &Cluster,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, String) {
    let mut request = reqwest::Client::new().request(method, cluster.gateway(1).url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the gateway answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Erases zed as the service: the answer, once 200.
async fn erase_zed(cluster: &Cluster) -> Value {
    let (status, answer) = call(
        cluster,
        reqwest::Method::POST,
        "/v1/users/zed/erase",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

fn records(export: &str) -> Vec<Value> {
    export
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn of_type<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["type"] == kind).collect()
}

async fn count(cluster: &Cluster, sql: &str) -> i64 {
    let client = cluster.postgres.client().await;
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_in_100_rooms_is_exported_then_erased_and_erasing_again_changes_nothing() {
    let cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    for i in 0..ROOMS {
        cluster.create_room(&format!("e{i}"), &["zed", "amy"]).await;
    }
    let api = chat_client::RoomApi::new(cluster.gateway(0).url(""), ADMIN_TOKEN);
    // One room zed owns with amy in it, one he is alone in.
    assert!(api
        .create_room_owned("own", &["zed"], &["amy"])
        .await
        .unwrap());
    assert!(api.create_room_owned("solo", &["zed"], &[]).await.unwrap());

    let mut amy = cluster.gateway(1).connect("amy").await;
    amy.join("e0").await;
    let hers = amy.send_and_wait("e0", "amy-0", "hi zed").await.unwrap();
    let mut zed = cluster.gateway(0).connect("zed").await;
    for i in 0..ROOMS {
        let room = format!("e{i}");
        zed.send_and_wait(&room, &format!("zed-{i}"), &format!("secret {i}"))
            .await
            .unwrap();
    }
    zed.send_and_wait("own", "zed-own", "secret own")
        .await
        .unwrap();
    let react = client_frame::Kind::React(React {
        room: "e0".into(),
        seq: hers.seq as i64,
        emoji: "👍".into(),
        remove: false,
        client_msg_id: "zed-react".into(),
    });
    assert!(matches!(zed.ask(react).await, Kind::Ack(_)));
    let edit = client_frame::Kind::Edit(Edit {
        room: "e1".into(),
        seq: 1,
        body: "secret edited".into(),
        client_msg_id: "zed-edit".into(),
    });
    assert!(
        matches!(zed.ask(edit).await, Kind::Ack(_)),
        "e1's seq 1 is zed's"
    );
    // Amy reacts to one of zed's: gone with his message's body.
    let on_his = client_frame::Kind::React(React {
        room: "e0".into(),
        seq: hers.seq as i64 + 1,
        emoji: "🎉".into(),
        remove: false,
        client_msg_id: "amy-react".into(),
    });
    assert!(matches!(amy.ask(on_his).await, Kind::Ack(_)));

    // Bad input: only the service token may export or erase.
    for (method, path) in [
        (reqwest::Method::GET, "/v1/users/zed/export"),
        (reqwest::Method::POST, "/v1/users/zed/erase"),
    ] {
        let (status, _) = call(&cluster, method.clone(), path, Some(&cluster.token("zed"))).await;
        assert_eq!(status, 403, "{path} with the user's own token");
        assert_eq!(
            call(&cluster, method.clone(), path, None).await.0,
            401,
            "{path} without a token"
        );
    }
    let (status, _) = call(
        &cluster,
        reqwest::Method::POST,
        "/v1/users/no%20one/erase",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 400, "a bad user id");
    assert_eq!(
        count(
            &cluster,
            "SELECT count(*) FROM members WHERE user_id = 'zed'"
        )
        .await,
        102,
        "the refusals changed nothing"
    );

    // Export: everything stored for zed.
    let (status, export) = call(
        &cluster,
        reqwest::Method::GET,
        "/v1/users/zed/export",
        Some(ADMIN_TOKEN),
    )
    .await;
    assert_eq!(status, 200);
    let all = records(&export);
    assert_eq!(of_type(&all, "membership").len(), ROOMS + 2);
    assert_eq!(of_type(&all, "read_marker").len(), ROOMS + 2);
    let reactions = of_type(&all, "reaction");
    assert_eq!(reactions.len(), 1);
    assert_eq!(reactions[0]["emoji"], "👍");
    let entries = of_type(&all, "entry");
    let chat: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "")
        .map(|e| e["body"].as_str().unwrap())
        .collect();
    assert_eq!(chat.len(), ROOMS + 1);
    // Each as it stands: e1's edited.
    for i in (0..ROOMS).filter(|&i| i != 1) {
        assert!(
            chat.contains(&format!("secret {i}").as_str()),
            "secret {i} exported"
        );
    }
    assert!(chat.contains(&"secret edited"));
    assert!(entries
        .iter()
        .any(|e| e["kind"] == "message_edited" && e["body"] == "secret edited"));

    // Erase.
    let erased = erase_zed(&cluster).await;
    assert_eq!(
        erased["roomsLeft"].as_array().unwrap().len(),
        ROOMS + 1,
        "{erased}"
    );
    assert_eq!(erased["roomsHandedOver"], serde_json::json!(["own"]));
    assert_eq!(erased["roomsKept"], serde_json::json!(["solo"]));
    assert!(
        erased["entriesErased"].as_u64().unwrap() >= ROOMS as u64 + 3,
        "{erased}"
    );

    // Only the room nobody could take stays his; no body of his is left,
    // and the reactions on his messages went with them.
    let left = |sql: &'static str| count(&cluster, sql);
    assert_eq!(
        left("SELECT count(*) FROM members WHERE user_id = 'zed'").await,
        1
    );
    assert_eq!(
        left("SELECT count(*) FROM read_markers WHERE user_id = 'zed'").await,
        1
    );
    assert_eq!(
        left("SELECT count(*) FROM messages WHERE sender_id = 'zed' AND body <> ''").await,
        0
    );
    assert_eq!(
        left("SELECT count(*) FROM messages WHERE sender_id = 'zed' AND kind = '' AND NOT deleted")
            .await,
        0
    );
    assert_eq!(
        left("SELECT count(*) FROM reactions WHERE user_id = 'amy'").await,
        0
    );
    assert_eq!(left("SELECT count(*) FROM members WHERE room_id = 'own' AND user_id = 'amy' AND role = 'owner'").await, 1);
    assert_eq!(
        left("SELECT count(*) FROM messages WHERE sender_id = 'amy' AND body = 'hi zed'").await,
        1,
        "others' words stay"
    );

    // Amy, joined in e0, saw him leave; her next page of it (read past
    // the Redis window) shows his message as a tombstone.
    loop {
        match amy.next_frame().await.kind {
            Some(Kind::Message(m)) if m.kind == "member_left" => break assert_eq!(m.member, "zed"),
            Some(Kind::Message(_)) => {}
            other => panic!("amy expected zed's member_left, got {other:?}"),
        }
    }
    let page = amy
        .ask(client_frame::Kind::History(History {
            room: "e0".into(),
            ..History::default()
        }))
        .await;
    let Kind::HistoryPage(page) = page else {
        panic!("{page:?}")
    };
    let his = page
        .messages
        .iter()
        .find(|m| m.sender == "zed" && m.kind.is_empty())
        .expect("his message has its seq still");
    assert!(
        his.deleted && his.body.is_empty() && his.reactions.is_empty(),
        "{his:?}"
    );

    // Asking again changes nothing.
    let again = erase_zed(&cluster).await;
    assert_eq!(again["roomsLeft"], serde_json::json!([]));
    assert_eq!(again["entriesErased"], 0);
    let (_, export) = call(
        &cluster,
        reqwest::Method::GET,
        "/v1/users/zed/export",
        Some(ADMIN_TOKEN),
    )
    .await;
    let after = records(&export);
    assert!(
        of_type(&after, "entry").iter().all(|e| e["body"] == ""),
        "no body exported after the erase"
    );
}

/// An erase whose gateway is SIGKILLed part-way (some rooms left, some
/// not, no entry erased yet) is finished by asking again on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erase_cut_short_by_its_gateway_dying_is_finished_by_asking_again() {
    let mut cluster = Cluster::start(ClusterOptions::new(2, 2)).await;
    for i in 0..ROOMS {
        cluster.create_room(&format!("c{i}"), &["zed", "amy"]).await;
    }
    let mut zed = cluster.gateway(1).connect("zed").await;
    for i in 0..ROOMS {
        let room = format!("c{i}");
        zed.send_and_wait(&room, &format!("zed-{i}"), &format!("secret {i}"))
            .await
            .unwrap();
    }
    let first = cluster.gateway(0).url("/v1/users/zed/erase");
    let cut = tokio::spawn(async move {
        reqwest::Client::new()
            .post(first)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
    });
    let rooms_left = "SELECT count(*) FROM members WHERE user_id = 'zed'";
    let started = std::time::Instant::now();
    loop {
        let left = count(&cluster, rooms_left).await;
        if left < ROOMS as i64 {
            assert!(
                left > 0,
                "the erase was not caught part-way ({:?})",
                started.elapsed()
            );
            break;
        }
        assert!(started.elapsed() < STEP, "the erase never started");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    cluster.gateways[0].process.kill();
    assert!(
        cut.await.unwrap().is_err(),
        "the first ask died with its gateway"
    );
    let part_way = count(&cluster, rooms_left).await;
    assert!(part_way > 0, "rooms still to leave after the cut");

    let erased = erase_zed(&cluster).await;
    // A removal already on its way when the gateway died may land after
    // the count above.
    let finished = erased["roomsLeft"].as_array().unwrap().len() as i64;
    assert!((1..=part_way).contains(&finished), "{erased}");
    assert_eq!(erased["entriesErased"], ROOMS as u64);
    assert_eq!(count(&cluster, rooms_left).await, 0);
    assert_eq!(
        count(
            &cluster,
            "SELECT count(*) FROM messages WHERE sender_id = 'zed' AND body <> ''"
        )
        .await,
        0
    );
}
