//! Media: uploads of each kind, thumbnails, EXIF removal, ranges, caching, limits, safe
//! serving of disguised files, access rules, attachments, avatars and orphan clean-up.

mod common;

use std::io::Cursor;
use std::time::{Duration, Instant};

use chatnode_client::protocol::{
    CreateGroupRequest, ErrorCode, MessageKind, SendMessageRequest, ServerFrame,
    UpdateProfileRequest,
};
use chatnode_client::{Client, Method};
use common::*;

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

const SECRET: &[u8] = b"GPS-SECRET-47.3769N-8.5417E";

/// A JPEG carrying an EXIF (APP1) segment with a recognisable "location".
fn jpeg_with_exif(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, _| image::Rgb([(x % 256) as u8, 50, 200]));
    let mut jpeg = Cursor::new(Vec::new());
    img.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let jpeg = jpeg.into_inner();
    let mut exif = b"Exif\0\0MM\0*\0\0\0\x08\0\0\0\0\0\0".to_vec();
    exif.extend_from_slice(SECRET);
    let len = (exif.len() + 2) as u16;
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn mp4(len: usize) -> Vec<u8> {
    let mut v = b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom".to_vec();
    v.extend_from_slice(&((len as u32 + 8).to_be_bytes()));
    v.extend_from_slice(b"mdat");
    v.extend((0..len).map(|i| (i % 251) as u8));
    v
}

fn pdf(len: usize) -> Vec<u8> {
    let mut v = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    v.extend(std::iter::repeat_n(b'x', len));
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn images_are_cleaned_measured_and_thumbnailed() {
    let server = TestServer::start().await;
    let (a, _) = register(&server, "pix").await;
    let original = jpeg_with_exif(1200, 600);
    assert!(contains(&original, SECRET));
    let m = a
        .upload(original.clone(), "image/jpeg", "holiday.jpg")
        .await
        .unwrap();
    assert_eq!(
        (m.mime.as_str(), m.width, m.height, m.name.as_str()),
        ("image/jpeg", Some(1200), Some(600), "holiday.jpg")
    );
    assert!(m.url.starts_with("/api/v1/media/"));
    let stored = a.download(&m.url).await.unwrap();
    assert!(!contains(&stored, SECRET), "EXIF location must be gone");
    assert!(!contains(&stored, b"Exif\0\0"), "no EXIF segment at all");
    assert_eq!(m.size as usize, stored.len());
    let decoded = image::load_from_memory(&stored).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (1200, 600));
    let thumb = a
        .download(m.thumbnail_url.as_deref().unwrap())
        .await
        .unwrap();
    let t = image::load_from_memory(&thumb).unwrap();
    assert_eq!((t.width(), t.height()), (320, 160));

    let p = a
        .upload(png(100, 80), "image/png", "small.png")
        .await
        .unwrap();
    assert_eq!((p.width, p.height), (Some(100), Some(80)));
    // Multipart works too.
    let boundary = "XyZ123boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"form.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&png(40, 30));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = a
        .raw_bytes(
            Method::POST,
            "/media",
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body,
            true,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(
        (v["name"].as_str(), v["width"].as_i64()),
        (Some("form.png"), Some(40))
    );
}

#[tokio::test]
async fn videos_and_files_serve_ranges_etags_and_safe_headers() {
    let server = TestServer::start().await;
    let (a, _) = register(&server, "vid").await;
    let video = mp4(100_000);
    let v = a
        .upload(video.clone(), "application/octet-stream", "clip.mp4")
        .await
        .unwrap();
    assert_eq!(
        (v.mime.as_str(), v.thumbnail_url.as_deref()),
        ("video/mp4", None)
    );
    let r = a
        .raw_with_headers(Method::GET, &v.url, &[("Range", "bytes=10-19")], true)
        .await
        .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-19/{}", video.len()).as_str())
    );
    assert_eq!(&r.body[..], &video[10..20]);
    let r = a
        .raw_with_headers(Method::GET, &v.url, &[("Range", "bytes=-5")], true)
        .await
        .unwrap();
    assert_eq!(&r.body[..], &video[video.len() - 5..]);
    let r = a
        .raw_with_headers(Method::GET, &v.url, &[("Range", "bytes=999999999-")], true)
        .await
        .unwrap();
    assert_eq!(r.status, 416);
    let full = a
        .raw_with_headers(Method::GET, &v.url, &[], true)
        .await
        .unwrap();
    assert_eq!(full.status, 200);
    assert_eq!(full.body.len(), video.len());
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert!(full.header("cache-control").unwrap().contains("immutable"));
    assert!(
        full.header("content-disposition")
            .unwrap()
            .starts_with("inline")
    );
    let etag = full.header("etag").unwrap().to_owned();
    let again = a
        .raw_with_headers(Method::GET, &v.url, &[("If-None-Match", &etag)], true)
        .await
        .unwrap();
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());

    let f = a
        .upload(pdf(5000), "application/pdf", "report.pdf")
        .await
        .unwrap();
    let r = a
        .raw_with_headers(Method::GET, &f.url, &[], true)
        .await
        .unwrap();
    assert_eq!(r.header("content-type"), Some("application/pdf"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename*=UTF-8''report.pdf")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("sandbox")
    );
}

#[tokio::test]
async fn disguised_html_and_svg_are_only_ever_plain_text_downloads() {
    let server = TestServer::start().await;
    let (a, _) = register(&server, "sneaky").await;
    for (bytes, ct, name) in [
        (
            &b"<!doctype html><html><script>alert(document.cookie)</script></html>"[..],
            "image/png",
            "cat.png",
        ),
        (
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"><rect/></svg>",
            "image/svg+xml",
            "logo.svg",
        ),
    ] {
        let m = a.upload(bytes.to_vec(), ct, name).await.unwrap();
        assert_eq!(m.mime, "text/plain", "{name}");
        assert_eq!(m.thumbnail_url, None);
        let r = a
            .raw_with_headers(Method::GET, &m.url, &[], true)
            .await
            .unwrap();
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert!(
            r.header("content-disposition")
                .unwrap()
                .starts_with("attachment;"),
            "{name}"
        );
        assert!(
            r.header("content-security-policy")
                .unwrap()
                .contains("sandbox")
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(&r.body[..], bytes);
    }
    // So is something that claims to be a PNG and is not one: a download, not an image.
    let m = a
        .upload(
            b"\x89PNG\r\n\x1a\n garbage garbage".to_vec(),
            "image/png",
            "x.png",
        )
        .await
        .unwrap();
    assert_eq!(
        (m.mime.as_str(), m.width),
        ("application/octet-stream", None)
    );
}

/// A download as the contract wants it for a type not shown inline.
async fn assert_download(c: &Client, url: &str, mime: &str, bytes: &[u8]) {
    let r = c
        .raw_with_headers(Method::GET, url, &[], true)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(mime));
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment;"),
        "{url}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.header("content-security-policy")
            .unwrap()
            .contains("sandbox")
    );
    assert_eq!(&r.body[..], bytes);
}

#[tokio::test]
async fn files_of_any_type_are_accepted_and_served_as_downloads() {
    let server = TestServer::start().await;
    let (a, au) = register(&server, "anyfile").await;
    let (b, bu) = register(&server, "anyfile_peer").await;
    befriend(&a, &au, &b, &bu).await;
    let direct = a.open_direct(&bu.id).await.unwrap();
    // 2 KB of random bytes, an executable, an archive of a format nobody knows.
    let mut random = vec![0u8; 2048];
    rand::fill(&mut random[..]);
    // Not accidentally text, nor a magic number (0xFF could start an MP3 frame).
    random[..4].copy_from_slice(b"QZ\x00\x01");
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend(std::iter::repeat_n(0u8, 200));
    let odd = b"\x00\x01QQZIPv9\x00\xfe\xfd".repeat(50);
    for (bytes, ct, name) in [
        (&random[..], "application/octet-stream", "data.bin"),
        (
            &elf[..],
            "application/vnd.android.package-archive",
            "app.apk",
        ),
        (&odd[..], "application/x-whatever", "backup.qqz"),
    ] {
        let m = a.upload(bytes.to_vec(), ct, name).await.unwrap();
        assert_eq!(m.mime, "application/octet-stream", "{name}");
        assert_eq!((m.size, m.name.as_str()), (bytes.len() as i64, name));
        assert_eq!(m.thumbnail_url, None);
        assert_download(&a, &m.url, "application/octet-stream", bytes).await;
        // Sent as a `file` message, the other member can download it.
        let sent = a
            .send_message(
                &direct.id,
                &SendMessageRequest {
                    client_id: format!("f-{name}"),
                    body: String::new(),
                    kind: Some(MessageKind::File),
                    attachment_ids: Some(vec![m.id.clone()]),
                    reply_to_seq: None,
                },
            )
            .await
            .unwrap()
            .0;
        assert_eq!(sent.attachments[0].mime, "application/octet-stream");
        assert_download(&b, &m.url, "application/octet-stream", bytes).await;
    }
    // The one type refusal left: nothing at all.
    let err = a
        .upload(Vec::new(), "application/octet-stream", "empty.bin")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(415), Some(ErrorCode::UnsupportedMediaType))
    );
}

/// A minimal Ogg page header (Opus), as a recorder's output starts.
fn ogg_opus(len: usize) -> Vec<u8> {
    let mut v =
        b"OggS\0\x02\0\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\x01\x13OpusHead\x01\x01".to_vec();
    v.extend((0..len).map(|i| (i % 253) as u8));
    v
}

/// The first bytes of a WebM file (EBML header, DocType "webm").
fn webm(len: usize) -> Vec<u8> {
    let mut v = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm\x42\x87\x81\x04\x42\x85\x81\x02".to_vec();
    v.extend((0..len).map(|i| (i % 249) as u8));
    v
}

#[tokio::test]
async fn voice_messages_are_audio_played_inline() {
    let server = TestServer::start().await;
    let (a, au) = register(&server, "voice").await;
    let (b, bu) = register(&server, "voice_peer").await;
    befriend(&a, &au, &b, &bu).await;
    let direct = a.open_direct(&bu.id).await.unwrap();
    let mut b_ws = b.connect_ws().await.unwrap();

    // A browser recording: WebM declared as audio, with the length the recorder measured.
    let rec = webm(3000);
    let r = a
        .raw_bytes(
            Method::POST,
            "/media?name=voice.webm&duration_ms=4200",
            Some("audio/webm;codecs=opus"),
            rec.clone(),
            true,
        )
        .await
        .unwrap();
    let v = r.json().unwrap();
    assert_eq!(r.status, 201, "{v}");
    assert_eq!(v["mime"], "audio/webm");
    assert_eq!(v["duration_ms"], 4200);
    let voice = v["id"].as_str().unwrap().to_owned();
    let ogg = a
        .upload(ogg_opus(1000), "audio/ogg", "note.ogg")
        .await
        .unwrap();
    assert_eq!(ogg.mime, "audio/ogg");
    assert_eq!(ogg.duration_ms, None);
    // The same WebM bytes without an audio type are a video.
    let video = a
        .upload(rec.clone(), "video/webm", "clip.webm")
        .await
        .unwrap();
    assert_eq!(video.mime, "video/webm");
    assert_eq!(video.duration_ms, None);
    let r = a
        .raw_bytes(
            Method::POST,
            "/media?duration_ms=-5",
            Some("audio/webm"),
            rec.clone(),
            true,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());

    // An audio message carries audio, and only audio.
    let req = |client_id: &str, ids: Vec<String>| SendMessageRequest {
        client_id: client_id.into(),
        body: String::new(),
        kind: Some(MessageKind::Audio),
        attachment_ids: Some(ids),
        reply_to_seq: None,
    };
    let err = a
        .send_message(&direct.id, &req("v0", vec![video.id.clone()]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    let err = a
        .send_message(&direct.id, &req("v00", vec![]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    let (sent, _) = a
        .send_message(&direct.id, &req("v1", vec![voice.clone()]))
        .await
        .unwrap();
    assert_eq!(sent.kind, MessageKind::Audio);
    assert_eq!(sent.attachments[0].duration_ms, Some(4200));
    let live = b_ws
        .next_matching(WAIT, |f| matches!(f, ServerFrame::Message { .. }))
        .await
        .unwrap();
    match live {
        Some(ServerFrame::Message { message, .. }) => assert_eq!(message, sent),
        other => panic!("no live audio message: {other:?}"),
    }
    let history = b.messages(&direct.id, None, None, None).await.unwrap();
    assert_eq!(history.messages[0], sent);
    // Played inline by the browser, with ranges for seeking.
    let r = b
        .raw_with_headers(
            Method::GET,
            &sent.attachments[0].url,
            &[("range", "bytes=0-9")],
            true,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-type"), Some("audio/webm"));
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("inline;")
    );
    assert_eq!(&r.body[..], &rec[..10]);
}

#[tokio::test]
async fn limits_answer_413_before_reading_everything() {
    let server = TestServer::start_with(&[
        "--max-file-size",
        "100000",
        "--max-video-size",
        "300000",
        "--max-image-pixels",
        "10000",
    ])
    .await;
    let (a, _) = register(&server, "big").await;
    let err = a
        .upload(pdf(200_000), "application/pdf", "big.pdf")
        .await
        .unwrap_err();
    assert_eq!(
        (err.status(), err.code()),
        (Some(413), Some(ErrorCode::TooLarge))
    );
    a.upload(mp4(200_000), "video/mp4", "ok.mp4").await.unwrap();
    let err = a
        .upload(mp4(400_000), "video/mp4", "big.mp4")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(413));
    let err = a
        .upload(png(200, 200), "image/png", "bomb.png")
        .await
        .unwrap_err();
    assert_eq!(
        err.status(),
        Some(413),
        "40,000 pixels is over the 10,000 limit"
    );
    // A declared length over every limit is refused at once.
    let r = a
        .raw_with_headers(
            Method::POST,
            "/media?name=x",
            &[
                ("Content-Length", "900000000"),
                ("Content-Type", "video/mp4"),
            ],
            true,
        )
        .await;
    match r {
        Ok(r) => assert_eq!(r.status, 413),
        // The server may answer and close before the client finished declaring the body.
        Err(e) => assert!(
            e.to_string().contains("connection") || e.status() == Some(413),
            "{e}"
        ),
    }
    // A fresh connection: the one above was left mid-request on purpose.
    let metrics = server.client().metrics().await.unwrap();
    assert!(
        metrics.contains("chatnode_http_server_errors_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn access_is_uploader_and_members_only_except_avatars() {
    let server = TestServer::start().await;
    let (a, au, b, bu, conv) = friends_with_direct(&server).await;
    let (s, _) = register(&server, "outsider").await;
    let pic = a.upload(png(64, 64), "image/png", "p.png").await.unwrap();
    let status = |c: &Client, url: String| {
        let c = c.clone();
        async move {
            c.raw_with_headers(Method::GET, &url, &[], true)
                .await
                .unwrap()
                .status
        }
    };
    assert_eq!(status(&a, pic.url.clone()).await, 200);
    assert_eq!(
        status(&b, pic.url.clone()).await,
        404,
        "not sent anywhere yet"
    );
    let anon = server.client();
    assert_eq!(
        anon.raw_with_headers(Method::GET, &pic.url, &[], false)
            .await
            .unwrap()
            .status,
        404
    );

    // Sent in the direct conversation: its members may read it, nobody else.
    let (msg, _) = a
        .send_message(
            &conv.id,
            &SendMessageRequest {
                client_id: "pic-1".into(),
                body: "look".into(),
                kind: Some(MessageKind::Image),
                attachment_ids: Some(vec![pic.id.clone()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(msg.attachments.len(), 1);
    assert_eq!(msg.attachments[0].id, pic.id);
    assert_eq!(status(&b, pic.url.clone()).await, 200);
    assert_eq!(status(&b, pic.thumbnail_url.clone().unwrap()).await, 200);
    assert_eq!(status(&s, pic.url.clone()).await, 404);
    let _ = (au, bu);

    // Avatars are readable by anyone, even without a token.
    let face = s.upload(png(96, 96), "image/png", "me.png").await.unwrap();
    let me = s
        .update_me(&UpdateProfileRequest {
            avatar_media_id: Some(face.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(me.user.avatar_url.as_deref(), Some(face.url.as_str()));
    assert_eq!(
        anon.raw_with_headers(Method::GET, &face.url, &[], false)
            .await
            .unwrap()
            .status,
        200
    );
    // Only your own images can be avatars.
    let doc = s
        .upload(pdf(100), "application/pdf", "cv.pdf")
        .await
        .unwrap();
    let e = s
        .update_me(&UpdateProfileRequest {
            avatar_media_id: Some(doc.id),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    let e = s
        .update_me(&UpdateProfileRequest {
            avatar_media_id: Some(pic.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    // Group avatars.
    let gpic = a.upload(png(50, 50), "image/png", "g.png").await.unwrap();
    let g = a
        .create_group(&CreateGroupRequest {
            name: "pics".into(),
            avatar_media_id: Some(gpic.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(g.avatar_url.as_deref(), Some(gpic.url.as_str()));
}

#[tokio::test]
async fn the_media_cookie_lets_browsers_load_media_without_headers() {
    let server = TestServer::start().await;
    let (a, _) = register(&server, "cookie").await;
    let pic = a.upload(png(10, 10), "image/png", "c.png").await.unwrap();
    let r = a
        .raw_bytes(Method::POST, "/media/cookie", None, Vec::new(), true)
        .await
        .unwrap();
    assert_eq!(r.status, 204);
    let set = r.header("set-cookie").unwrap().to_owned();
    assert!(
        set.contains("HttpOnly")
            && set.contains("SameSite=Strict")
            && set.contains("Path=/api/v1/media"),
        "{set}"
    );
    let pair = set.split(';').next().unwrap().to_owned();
    let anon = server.client();
    let r = anon
        .raw_with_headers(Method::GET, &pic.url, &[("Cookie", &pair)], false)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = anon
        .raw_with_headers(
            Method::GET,
            &pic.url,
            &[("Cookie", "chatnode_media=forged")],
            false,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    // The media token is not an access token.
    let token = pair.split_once('=').unwrap().1;
    let e = server.client().with_token(token).me().await.unwrap_err();
    assert_eq!(e.status(), Some(401));
}

#[tokio::test]
async fn messages_carry_attachments_everywhere() {
    let server = TestServer::start().await;
    let (a, _au, b, _bu, conv) = friends_with_direct(&server).await;
    let mut bws = b.connect_ws().await.unwrap();
    let doc = a
        .upload(pdf(1000), "application/pdf", "notes.pdf")
        .await
        .unwrap();
    let clip = a.upload(mp4(1000), "video/mp4", "clip.mp4").await.unwrap();
    let pic = a.upload(png(20, 20), "image/png", "i.png").await.unwrap();
    let send = |kind: MessageKind, ids: Vec<String>, cid: &str| SendMessageRequest {
        client_id: cid.into(),
        body: String::new(),
        kind: Some(kind),
        attachment_ids: Some(ids),
        ..Default::default()
    };
    let (m, _) = a
        .send_message(
            &conv.id,
            &send(MessageKind::File, vec![doc.id.clone()], "f1"),
        )
        .await
        .unwrap();
    assert_eq!(m.attachments[0].name, "notes.pdf");
    a.send_message(
        &conv.id,
        &send(MessageKind::Video, vec![clip.id.clone()], "v1"),
    )
    .await
    .unwrap();
    // Kinds must match what is attached; someone else's upload cannot be attached.
    let e = a
        .send_message(
            &conv.id,
            &send(MessageKind::Image, vec![doc.id.clone()], "bad1"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    let theirs = b.upload(png(5, 5), "image/png", "b.png").await.unwrap();
    let e = a
        .send_message(
            &conv.id,
            &send(MessageKind::Image, vec![theirs.id.clone()], "bad2"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    let mut aws = a.connect_ws().await.unwrap();
    aws.send_frame(chatnode_client::protocol::ClientFrame::Send {
        conversation_id: conv.id.clone(),
        client_id: "ws-img".into(),
        body: "over the socket".into(),
        kind: Some(MessageKind::Image),
        attachment_ids: Some(vec![pic.id.clone()]),
        reply_to_seq: None,
    })
    .await
    .unwrap();
    let acked = aws.wait_ack("ws-img", WAIT).await.unwrap();
    assert_eq!(acked.attachments[0].width, Some(20));
    // The receiver's live events, history and conversation list all carry them.
    let mut live = Vec::new();
    while live.len() < 3 {
        if let Some(ServerFrame::Message { message, .. }) = bws.next_frame(WAIT).await.unwrap() {
            live.push(message);
        }
    }
    assert!(live.iter().all(|m| m.attachments.len() == 1), "{live:?}");
    let history = b.messages(&conv.id, None, None, None).await.unwrap();
    assert!(history.messages.iter().all(|m| m.attachments.len() == 1));
    let list = b.conversations().await.unwrap();
    assert_eq!(
        list.conversations[0]
            .last_message
            .as_ref()
            .unwrap()
            .attachments[0]
            .id,
        pic.id
    );
    // Retrying a send returns the attachments as well.
    let (again, created) = a
        .send_message(
            &conv.id,
            &send(MessageKind::File, vec![doc.id.clone()], "f1"),
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.attachments[0].id, doc.id);
}

#[tokio::test]
async fn uploads_never_sent_are_removed_after_the_grace_period() {
    let server =
        TestServer::start_with(&["--media-grace-secs", "1", "--media-gc-interval-secs", "1"]).await;
    let (a, _au, _b, _bu, conv) = friends_with_direct(&server).await;
    let kept = a.upload(png(8, 8), "image/png", "kept.png").await.unwrap();
    let dropped = a
        .upload(png(8, 8), "image/png", "dropped.png")
        .await
        .unwrap();
    let avatar = a.upload(png(8, 8), "image/png", "face.png").await.unwrap();
    a.update_me(&UpdateProfileRequest {
        avatar_media_id: Some(avatar.id.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    a.send_message(
        &conv.id,
        &SendMessageRequest {
            client_id: "keep".into(),
            kind: Some(MessageKind::Image),
            attachment_ids: Some(vec![kept.id.clone()]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = a
            .raw_with_headers(Method::GET, &dropped.url, &[], true)
            .await
            .unwrap();
        if r.status == 404 {
            break;
        }
        assert!(Instant::now() < deadline, "orphan upload was never removed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for m in [&kept, &avatar] {
        assert_eq!(
            a.raw_with_headers(Method::GET, &m.url, &[], true)
                .await
                .unwrap()
                .status,
            200,
            "{}",
            m.name
        );
    }
    // The blob leaves the disk too (right after its record): only kept + avatar (and their
    // thumbnails) remain.
    let count = || {
        let mut files = 0;
        for dir in std::fs::read_dir(server.data_dir().join("media")).unwrap() {
            let dir = dir.unwrap();
            if dir.file_name() != "tmp" {
                files += std::fs::read_dir(dir.path()).unwrap().count();
            }
        }
        files
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while count() != 4 {
        assert!(Instant::now() < deadline, "{} files left", count());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
