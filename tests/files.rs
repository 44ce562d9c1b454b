//! Files attached to messages, between in-process peers on loopback with data dirs: a file and a
//! folder to everyone and privately, an empty file, a file named by a room message without the
//! right to it, resume after a restart, and what a hostile member gets (a raw client:
//! `common::member`).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use lanpeer::protocol::Body;
use lanpeer::{Config, Event};
use sha2::{Digest, Sha256};

const T: Duration = Duration::from_secs(20);

fn with_dirs(name: &str, port: u16, room: &str, data: &Path, downloads: &Path) -> Config {
    let mut c = config(name, port, room);
    c.data_dir = Some(data.to_path_buf());
    c.downloads = Some(downloads.to_path_buf());
    c
}

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(seed as u32) as u8 ^ seed).collect()
}

/// Wait for `peer`'s `file` events for each of `names` (in any order); the paths they name,
/// each file's content checked against the hash its event gives.
async fn file_events(peer: &mut Peer, names: &[&str]) -> std::collections::HashMap<String, PathBuf> {
    let mut got = std::collections::HashMap::new();
    while got.len() < names.len() {
        let e = wait_for(peer, T, |e| matches!(e, Event::File { name, .. } if names.contains(&name.as_str()))).await;
        let Event::File { path, sha256, size, name, .. } = e else { unreachable!() };
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&bytes)), sha256, "{name}: saved content matches its hash");
        assert!(got.insert(name.clone(), path).is_none(), "{name} reported twice");
    }
    got
}

async fn file_event(peer: &mut Peer, name: &str) -> PathBuf {
    file_events(peer, &[name]).await.remove(name).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_and_a_folder_reach_everyone_and_a_private_file_only_its_addressee() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let (port, room) = unique_net();
    let dirs: Vec<TmpDir> = (0..7).map(|i| TmpDir::new(&format!("lanpeer-files-{i}"))).collect();
    let a = start_with(with_dirs("Ada", port, &room, &dirs[0], &dirs[1])).await;
    let mut b = start_with(with_dirs("Bob", port, &room, &dirs[2], &dirs[3])).await;
    let mut c = start_with(with_dirs("Cy", port, &room, &dirs[4], &dirs[5])).await;
    for p in [&a, &b, &c] {
        wait_listed(p, 2, T).await;
    }
    let src = &dirs[6];
    let big = content(1_000_000, 3);
    std::fs::write(src.join("data.bin"), &big).unwrap();
    std::fs::create_dir_all(src.join("src/lib")).unwrap();
    std::fs::write(src.join("src/main.py"), b"print('hi')\n").unwrap();
    std::fs::write(src.join("src/lib/__init__.py"), b"").unwrap();
    std::fs::write(src.join("src/lib/util.py"), b"x = 1\n").unwrap();

    let refs = a.node.prepare_files(vec![src.join("data.bin"), src.join("src")]).await.unwrap();
    let names: Vec<_> = refs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["data.bin", "src/lib/__init__.py", "src/lib/util.py", "src/main.py"]);
    let id = a.node.send_with(None, Body::Chat { text: String::new() }, refs).await.unwrap();
    for p in [&mut b, &mut c] {
        let m = wait_for(p, T, |e| matches!(e, Event::Message(m) if m.id == id)).await;
        let Event::Message(m) = m else { unreachable!() };
        assert_eq!(m.files.len(), 4);
        let got = file_events(p, &["data.bin", "src/main.py", "src/lib/__init__.py", "src/lib/util.py"]).await;
        assert_eq!(std::fs::read(&got["data.bin"]).unwrap(), big);
        assert!(got["data.bin"].starts_with(p.node.downloads().unwrap()), "{}", got["data.bin"].display());
        assert!(got["src/main.py"].ends_with(Path::new("src/main.py")), "{}", got["src/main.py"].display());
        assert_eq!(std::fs::read(&got["src/lib/__init__.py"]).unwrap(), b"");
    }

    // Privately to Bob: Cy never gets it, and cannot fetch it by its hash.
    std::fs::write(src.join("secret.txt"), b"for Bob only").unwrap();
    let refs = a.node.prepare_files(vec![src.join("secret.txt")]).await.unwrap();
    let id = a.node.send_with(Some(b.node.id()), Body::Chat { text: "yours".into() }, refs).await.unwrap();
    let p = file_event(&mut b, "secret.txt").await;
    assert_eq!(std::fs::read(p).unwrap(), b"for Bob only");
    assert_none(&mut c, Duration::from_secs(2), |e| matches!(e, Event::File { message_id, .. } if *message_id == id))
        .await;
    for p in [a, b, c] {
        p.node.shutdown().await;
    }
}

/// A member who learned the hashes of a private file names them in a room message of its own:
/// the addressee, who holds the file, gives it under that message to nobody (it holds it under
/// the private message only), not to the member itself, and not to a third peer that fetches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_message_naming_a_private_file_does_not_make_it_the_rooms() {
    use common::member::Member;
    use lanpeer::codec::Received;
    use lanpeer::protocol::{FileAsk, FileKey, FileNone, FileWant, Frame, Part};

    let (port, room) = unique_net();
    let dirs: Vec<TmpDir> = (0..7).map(|i| TmpDir::new(&format!("lanpeer-leak-{i}"))).collect();
    let a = start_with(with_dirs("Ada", port, &room, &dirs[0], &dirs[1])).await;
    let mut b = start_with(with_dirs("Bob", port, &room, &dirs[2], &dirs[3])).await;
    let mut c = start_with(with_dirs("Cy", port, &room, &dirs[4], &dirs[5])).await;
    for p in [&a, &b, &c] {
        wait_listed(p, 2, T).await;
    }
    std::fs::write(dirs[6].join("marks.csv"), b"Bob,12\nCy,15\n").unwrap();
    let refs = a.node.prepare_files(vec![dirs[6].join("marks.csv")]).await.unwrap();
    let secret = refs[0].clone();
    let private = a.node.send_with(Some(b.node.id()), Body::Chat { text: "your marks".into() }, refs).await.unwrap();
    file_event(&mut b, "marks.csv").await;

    // The member joins Bob and Cy, and posts to the room a chat naming the private file.
    let mut to_b = Member::join(b.node.listen_addr(), &room, "Mallory", &[]).await;
    let mut to_c = Member::join_as(to_b.keys.clone(), c.node.listen_addr(), &room, "Mallory", &[]).await;
    let mut env = to_b.envelope(Body::Chat { text: "look".into() });
    env.files = vec![secret.clone()];
    to_b.stream(std::slice::from_ref(&env)).await;
    to_c.stream(std::slice::from_ref(&env)).await;
    wait_for(&mut c, T, |e| matches!(e, Event::Message(m) if m.id == env.id)).await;

    // Asked under its own room message, and under the private one, Bob gives nothing.
    for msg in [env.id, private] {
        let key = FileKey { msg, file: secret.chunks };
        to_b.send(&[Frame::FileAsk(FileAsk { key }), Frame::FileWant(FileWant { key, part: Part::Chunk(0) })]).await;
        for _ in 0..2 {
            match to_b
                .next_where(T, |f| {
                    matches!(f, Received::Other(Frame::FileNone(_) | Frame::FilePart(_) | Frame::FileHave(_)))
                })
                .await
            {
                Received::Other(Frame::FileNone(FileNone { file, .. })) => assert_eq!(file, secret.chunks),
                other => panic!("Bob answered the member with {other:?}"),
            }
        }
    }
    // And Cy, fetching it under the member's room message, never gets it.
    assert_none(&mut c, Duration::from_secs(4), |e| matches!(e, Event::File { .. })).await;
    for p in [a, b, c] {
        p.node.shutdown().await;
    }
}
