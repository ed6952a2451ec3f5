// In-memory stand-in for the ChatNode server (API contract v1), for developing the web
// client before the Rust server exists. Not a reference implementation.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { acceptUpgrade } from './ws-lite.mjs';

export function startMock(port = 0) {
  const users = new Map(); // id -> user record
  const access = new Map(); // token -> userId
  const refresh = new Map(); // token -> {userId, spent}
  const friends = new Set(); // "a|b" sorted
  const requests = new Map(); // id -> {id, from, to, created_at}
  const blocks = new Set(); // "blocker|blocked"
  const convs = new Map();
  const invites = new Map();
  const logs = new Map(); // userId -> [{pos, ev}]
  const sockets = new Map(); // userId -> Set(conn)
  const media = new Map(); // id -> {id, owner, mime, kind, name, bytes, width, height, avatar}
  const mediaCookies = new Map(); // cookie token -> userId
  let streamPos = 0;
  const now = () => new Date().toISOString();
  const pair = (a, b) => [a, b].sort().join('|');

  const pub = (u, self = false) => ({
    id: u.id, username: u.username, display_name: u.display_name, avatar_url: u.avatar ? `/api/v1/media/${u.avatar}` : null, bio: u.bio,
    online: (sockets.get(u.id)?.size ?? 0) > 0, last_seen_at: u.last_seen_at,
    ...(self ? { email: u.email ?? null, phone: u.phone ?? null } : {}),
  });
  const friendsOf = (id) => [...friends].filter((p) => p.split('|').includes(id)).map((p) => p.split('|').find((x) => x !== id));

  function emit(userIds, ev, durable = true) {
    for (const uid of new Set(userIds)) {
      const e = { ...ev };
      if (durable) {
        e.stream_pos = ++streamPos;
        if (!logs.has(uid)) logs.set(uid, []);
        logs.get(uid).push(e);
      }
      for (const c of sockets.get(uid) ?? []) if (c.authed) c.send(JSON.stringify(e));
    }
  }

  function convView(c, uid) {
    const me = c.members.get(uid);
    const msgs = c.messages.filter((m) => !m.hiddenFor?.has(uid));
    const last = msgs[msgs.length - 1] ?? null;
    const v = {
      id: c.id, kind: c.kind, name: c.name, avatar_url: c.avatar ? `/api/v1/media/${c.avatar}` : null, description: c.description, public: c.public,
      created_at: c.created_at, last_message: last ? msgOut(last) : null,
      unread_count: msgs.filter((m) => m.seq > (me?.last_read_seq ?? 0) && m.sender_id !== uid && !m.deleted).length,
      my_role: me?.role ?? 'member', last_read_seq: me?.last_read_seq ?? 0, member_count: c.members.size,
    };
    if (c.kind === 'direct') {
      const peerId = [...c.members.keys()].find((x) => x !== uid);
      v.peer = pub(users.get(peerId));
      v.peer_last_read_seq = c.members.get(peerId)?.last_read_seq ?? 0;
    }
    return v;
  }
  const msgOut = (m) => { const { hiddenFor, ...rest } = m; return { ...rest, body: m.deleted ? '' : m.body }; };

  function issue(uid) {
    const exp = Math.floor(Date.now() / 1000) + 900;
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const at = `${b64({ alg: 'none' })}.${b64({ sub: uid, exp, jti: randomUUID() })}.x`;
    const rt = randomUUID();
    access.set(at, uid);
    refresh.set(rt, { userId: uid, spent: false });
    return { access_token: at, refresh_token: rt };
  }

  const err = (status, code, message) => ({ status, body: { error: { code, message } } });

  function sendMessage(uid, cid, b) {
    const c = convs.get(cid);
    if (!c || !c.members.has(uid)) return err(404, 'not_found', 'no such conversation');
    const kind = b.kind ?? 'text';
    const ids = b.attachment_ids ?? [];
    if (typeof b.body !== 'string' || (kind === 'text' && !b.body.trim())) return err(400, 'invalid_request', 'empty body');
    if (kind !== 'text' && !ids.length) return err(400, 'invalid_request', 'attachments needed');
    const attachments = [];
    for (const id of ids) {
      const md = media.get(id);
      if (!md || md.owner !== uid) return err(404, 'not_found', 'no such attachment');
      if ((kind === 'image' && md.kind !== 'image') || (kind === 'video' && md.kind !== 'video')) return err(400, 'invalid_request', 'kind mismatch');
      attachments.push(mediaOut(md));
    }
    if (c.kind === 'direct') {
      const peer = [...c.members.keys()].find((x) => x !== uid);
      if (blocks.has(`${peer}|${uid}`) || blocks.has(`${uid}|${peer}`)) return err(403, 'blocked', 'blocked');
    }
    const dup = c.messages.find((m) => m.sender_id === uid && m.client_id === b.client_id);
    if (dup) return { status: 200, body: msgOut(dup), dup: true };
    const m = {
      id: randomUUID(), conversation_id: cid, seq: ++c.seq, sender_id: uid, client_id: b.client_id, kind,
      body: b.body, attachments, reply_to_seq: b.reply_to_seq ?? null, created_at: now(), edited_at: null, deleted: false,
    };
    c.messages.push(m);
    c.members.get(uid).last_read_seq = m.seq;
    emit([...c.members.keys()], { type: 'message', message: msgOut(m) });
    return { status: 201, body: msgOut(m) };
  }

  const mediaOut = (md) => ({
    id: md.id, mime: md.mime, size: md.bytes.length, name: md.name, url: `/api/v1/media/${md.id}`,
    width: md.width, height: md.height, thumbnail_url: md.kind === 'image' ? `/api/v1/media/${md.id}/thumbnail` : null,
  });
  /** Type from the first bytes, roughly like the server (no thumbnails: the original is used). */
  function sniffMedia(buf) {
    const head = buf.subarray(0, 16).toString('latin1');
    if (head.startsWith('\x89PNG')) return { mime: 'image/png', kind: 'image', width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
    if (head.startsWith('\xff\xd8\xff')) return { mime: 'image/jpeg', kind: 'image', width: null, height: null };
    if (head.startsWith('GIF8')) return { mime: 'image/gif', kind: 'image', width: buf.readUInt16LE(6), height: buf.readUInt16LE(8) };
    if (head.startsWith('RIFF') && head.slice(8, 12) === 'WEBP') return { mime: 'image/webp', kind: 'image', width: null, height: null };
    if (head.slice(4, 8) === 'ftyp') return { mime: 'video/mp4', kind: 'video', width: null, height: null };
    if (head.startsWith('\x1aE\xdf\xa3')) return { mime: 'video/webm', kind: 'video', width: null, height: null };
    if (head.startsWith('%PDF')) return { mime: 'application/pdf', kind: 'file', width: null, height: null };
    const text = buf.subarray(0, 8192).toString('utf8');
    if (buf.length && !text.includes('\ufffd') && !/[\x00-\x08\x0e-\x1a\x1c-\x1f]/.test(text)) return { mime: 'text/plain', kind: 'file', width: null, height: null };
    return null;
  }
  function canRead(uid, md) {
    if (md.avatar || md.owner === uid) return true;
    if (!uid) return false;
    for (const c of convs.values()) if (c.members.has(uid) && c.messages.some((m) => !m.deleted && m.attachments.some((a) => a.id === md.id))) return true;
    return false;
  }

  function route(method, path, query, b, uid) {
    let m;
    const u = uid && users.get(uid);
    if (method === 'POST' && path === '/auth/register') {
      if (!b.username || !b.password || (!b.email && !b.phone)) return err(400, 'invalid_request', 'missing fields');
      if (b.password.length < 10) return err(400, 'invalid_request', 'password too short');
      for (const x of users.values()) {
        if (x.username.toLowerCase() === b.username.toLowerCase()) return err(409, 'username_taken', 'username taken');
        if (b.email && x.email === b.email) return err(409, 'email_taken', 'email taken');
      }
      const nu = { id: randomUUID(), username: b.username, display_name: b.display_name || b.username, email: b.email, phone: b.phone, password: b.password, bio: null, last_seen_at: null };
      users.set(nu.id, nu);
      return { status: 201, body: { user: pub(nu, true), ...issue(nu.id) } };
    }
    if (method === 'POST' && path === '/auth/login') {
      const x = [...users.values()].find((x) => [x.username, x.email, x.phone].includes(b.login));
      if (!x || x.password !== b.password) return err(401, 'unauthenticated', 'wrong login or password');
      return { status: 200, body: { user: pub(x, true), ...issue(x.id) } };
    }
    if (method === 'POST' && path === '/auth/refresh') {
      const r = refresh.get(b.refresh_token);
      if (!r || r.spent) return err(401, 'unauthenticated', 'invalid refresh token');
      r.spent = true;
      const t = issue(r.userId);
      return { status: 200, body: t };
    }
    if (method === 'POST' && path === '/auth/logout') { refresh.delete(b.refresh_token); return { status: 204 }; }
    // Sign-in options of the 2026-12-07 additions: open registration, no single sign-on.
    if (method === 'GET' && path === '/auth/registration') return { status: 200, body: { mode: 'open' } };
    if (method === 'GET' && path === '/auth/providers') return { status: 200, body: { providers: [] } };
    if (!u) return err(401, 'unauthenticated', 'missing or invalid token');

    // Service notifications: none here.
    if (method === 'GET' && path === '/notifications') return { status: 200, body: { notifications: [], next_cursor: null, unread_count: 0 } };
    if (method === 'POST' && path === '/notifications/read') return { status: 204 };
    if (path === '/users/me') {
      if (method === 'PATCH') {
        if (b.avatar_media_id !== undefined) {
          const md = media.get(b.avatar_media_id);
          if (!md || md.owner !== uid) return err(404, 'not_found', 'no such media');
          if (md.kind !== 'image') return err(400, 'invalid_request', 'an avatar must be an image');
          md.avatar = true;
          u.avatar = md.id;
        }
        if (b.display_name !== undefined) u.display_name = b.display_name || u.username;
        if (b.bio !== undefined) u.bio = b.bio;
      }
      return { status: 200, body: pub(u, true) };
    }
    if (method === 'GET' && path === '/users') {
      const q = (query.get('q') ?? '').toLowerCase();
      return { status: 200, body: { users: [...users.values()].filter((x) => q && (x.username.toLowerCase().startsWith(q) || x.display_name.toLowerCase().startsWith(q) || x.email === q)).map((x) => pub(x)) } };
    }
    if ((m = path.match(/^\/users\/([^/]+)$/)) && method === 'GET') {
      const x = users.get(m[1]);
      return x ? { status: 200, body: pub(x) } : err(404, 'not_found', 'no such user');
    }
    // Like the server's `friend.request.removed` extension: sent to both people.
    function dropRequest(r) {
      requests.delete(r.id);
      emit([r.from.id, r.to.id], { type: 'friend.request.removed', request_id: r.id });
    }
    if (path === '/friends/requests' && method === 'POST') {
      const to = users.get(b.user_id);
      if (!to || to.id === uid) return err(404, 'not_found', 'no such user');
      if (blocks.has(`${to.id}|${uid}`) || blocks.has(`${uid}|${to.id}`)) return err(403, 'blocked', 'you cannot send a request to this person');
      if (friends.has(pair(uid, to.id))) return err(409, 'conflict', 'you are already friends');
      const reverse = [...requests.values()].find((r) => r.from.id === to.id && r.to.id === uid);
      if (reverse) {
        dropRequest(reverse);
        friends.add(pair(uid, to.id));
        emit([to.id], { type: 'friend.added', user: pub(u) });
        emit([uid], { type: 'friend.added', user: pub(to) });
        return { status: 200, body: { friend: pub(to) } };
      }
      const r = { id: randomUUID(), from: pub(u), to: pub(to), created_at: now() };
      requests.set(r.id, r);
      emit([to.id, uid], { type: 'friend.request', request: r });
      return { status: 201, body: r };
    }
    if (path === '/friends/requests' && method === 'GET') {
      const all = [...requests.values()];
      return { status: 200, body: { incoming: all.filter((r) => r.to.id === uid), outgoing: all.filter((r) => r.from.id === uid) } };
    }
    if ((m = path.match(/^\/friends\/requests\/([^/]+)(?:\/(accept|decline))?$/))) {
      const r = requests.get(m[1]);
      if (!r) return err(404, 'not_found', 'no such request');
      if (m[2] === 'accept' && r.to.id === uid) {
        dropRequest(r);
        friends.add(pair(r.from.id, uid));
        emit([r.from.id], { type: 'friend.added', user: pub(u) });
        emit([uid], { type: 'friend.added', user: pub(users.get(r.from.id)) });
        return { status: 200, body: { friend: pub(users.get(r.from.id)) } };
      }
      if ((m[2] === 'decline' && r.to.id === uid) || (method === 'DELETE' && r.from.id === uid)) { dropRequest(r); return { status: 204 }; }
      return err(404, 'not_found', 'no such request');
    }
    if (path === '/friends' && method === 'GET') return { status: 200, body: { friends: friendsOf(uid).map((id) => pub(users.get(id))) } };
    if ((m = path.match(/^\/friends\/([^/]+)$/)) && method === 'DELETE') {
      friends.delete(pair(uid, m[1]));
      emit([m[1]], { type: 'friend.removed', user_id: uid });
      emit([uid], { type: 'friend.removed', user_id: m[1] });
      return { status: 204 };
    }
    if ((m = path.match(/^\/blocks\/([^/]+)$/))) {
      if (method === 'PUT') {
        blocks.add(`${uid}|${m[1]}`);
        if (friends.delete(pair(uid, m[1]))) {
          emit([m[1]], { type: 'friend.removed', user_id: uid });
          emit([uid], { type: 'friend.removed', user_id: m[1] });
        }
        for (const r of [...requests.values()]) if ((r.from.id === uid && r.to.id === m[1]) || (r.from.id === m[1] && r.to.id === uid)) dropRequest(r);
      }
      else blocks.delete(`${uid}|${m[1]}`);
      return { status: 204 };
    }
    if (path === '/blocks') return { status: 200, body: { blocks: [...blocks].filter((x) => x.startsWith(uid + '|')).map((x) => pub(users.get(x.split('|')[1]))) } };

    if (path === '/conversations/direct' && method === 'POST') {
      if (!friends.has(pair(uid, b.user_id))) return err(403, 'not_friends', 'you are not friends');
      let c = [...convs.values()].find((c) => c.kind === 'direct' && c.members.has(uid) && c.members.has(b.user_id));
      if (!c) {
        c = { id: randomUUID(), kind: 'direct', name: null, description: null, public: false, created_at: now(), seq: 0, messages: [], members: new Map() };
        for (const id of [uid, b.user_id]) c.members.set(id, { role: 'member', joined_at: now(), last_read_seq: 0 });
        convs.set(c.id, c);
      }
      return { status: 200, body: convView(c, uid) };
    }
    if (path === '/conversations' && method === 'GET') {
      const list = [...convs.values()].filter((c) => c.members.has(uid)).map((c) => convView(c, uid));
      list.sort((a, b) => ((b.last_message?.created_at ?? b.created_at) > (a.last_message?.created_at ?? a.created_at) ? 1 : -1));
      return { status: 200, body: { conversations: list, next_cursor: null } };
    }
    if ((m = path.match(/^\/conversations\/([^/]+)$/)) && method === 'GET') {
      const c = convs.get(m[1]);
      return c && c.members.has(uid) ? { status: 200, body: convView(c, uid) } : err(404, 'not_found', 'no such conversation');
    }
    if ((m = path.match(/^\/conversations\/([^/]+)\/messages$/))) {
      const c = convs.get(m[1]);
      if (!c || !c.members.has(uid)) return err(404, 'not_found', 'no such conversation');
      if (method === 'POST') return sendMessage(uid, c.id, b);
      const limit = Math.min(Number(query.get('limit') ?? 50), 200);
      const before = query.get('before_seq');
      const after = query.get('after_seq');
      let list = c.messages.filter((x) => !x.hiddenFor?.has(uid));
      if (after) { list = list.filter((x) => x.seq > Number(after)).slice(0, limit); return { status: 200, body: { messages: list.map(msgOut), next_cursor: null } }; }
      if (before) list = list.filter((x) => x.seq < Number(before));
      const page = list.slice(-limit).reverse();
      return { status: 200, body: { messages: page.map(msgOut), next_cursor: list.length > limit ? String(page[page.length - 1].seq) : null } };
    }
    if ((m = path.match(/^\/conversations\/([^/]+)\/messages\/(\d+)$/))) {
      const c = convs.get(m[1]);
      const msg = c?.messages.find((x) => x.seq === Number(m[2]));
      if (!c || !c.members.has(uid) || !msg) return err(404, 'not_found', 'no such message');
      if (method === 'PATCH') {
        if (msg.sender_id !== uid) return err(403, 'forbidden', 'not yours');
        msg.body = b.body; msg.edited_at = now();
        emit([...c.members.keys()], { type: 'message.updated', message: msgOut(msg) });
        return { status: 200, body: msgOut(msg) };
      }
      if (query.get('for') === 'everyone') {
        const role = c.members.get(uid).role;
        if (msg.sender_id !== uid && !(c.kind === 'group' && role !== 'member')) return err(403, 'forbidden', 'not allowed');
        msg.deleted = true; msg.body = '';
        emit([...c.members.keys()], { type: 'message.deleted', conversation_id: c.id, seq: msg.seq });
      } else {
        (msg.hiddenFor ??= new Set()).add(uid);
      }
      return { status: 204 };
    }
    if ((m = path.match(/^\/conversations\/([^/]+)\/read$/))) {
      const c = convs.get(m[1]);
      if (!c || !c.members.has(uid)) return err(404, 'not_found', 'no such conversation');
      markRead(uid, c, b.seq);
      return { status: 204 };
    }
    if (path === '/groups' && method === 'POST') {
      if (!b.name) return err(400, 'invalid_request', 'name required');
      for (const id of b.member_ids ?? []) if (!friends.has(pair(uid, id))) return err(403, 'not_friends', 'members must be friends');
      const c = { id: randomUUID(), kind: 'group', name: b.name, description: b.description ?? null, public: !!b.public, created_at: now(), seq: 0, messages: [], members: new Map() };
      c.members.set(uid, { role: 'owner', joined_at: now(), last_read_seq: 0 });
      for (const id of b.member_ids ?? []) c.members.set(id, { role: 'member', joined_at: now(), last_read_seq: 0 });
      convs.set(c.id, c);
      for (const id of c.members.keys()) emit([...c.members.keys()], { type: 'member.added', conversation_id: c.id, user_id: id, role: c.members.get(id).role });
      return { status: 201, body: convView(c, uid) };
    }
    if (path === '/groups' && method === 'GET') {
      const q = (query.get('q') ?? '').toLowerCase();
      return { status: 200, body: { groups: [...convs.values()].filter((c) => c.kind === 'group' && c.public && (!q || c.name.toLowerCase().includes(q))).map((c) => convView(c, uid)), next_cursor: null } };
    }
    if ((m = path.match(/^\/groups\/([^/]+)(\/.*)?$/))) {
      const c = convs.get(m[1]);
      if (!c || c.kind !== 'group') return err(404, 'not_found', 'no such group');
      const sub = m[2] ?? '';
      const me = c.members.get(uid);
      const admin = me && me.role !== 'member';
      const members = () => [...c.members.keys()];
      if (sub === '/join' && method === 'POST') {
        if (!c.public) return err(404, 'not_found', 'no such group');
        if (!me) { c.members.set(uid, { role: 'member', joined_at: now(), last_read_seq: c.seq }); emit(members(), { type: 'member.added', conversation_id: c.id, user_id: uid, role: 'member' }); }
        return { status: 200, body: convView(c, uid) };
      }
      if (!me) return err(404, 'not_found', 'no such group');
      if (sub === '' && method === 'PATCH') {
        if (!admin) return err(403, 'forbidden', 'admins only');
        if (b.avatar_media_id !== undefined) {
          const md = media.get(b.avatar_media_id);
          if (!md || md.owner !== uid || md.kind !== 'image') return err(400, 'invalid_request', 'an avatar must be an image you uploaded');
          md.avatar = true;
          c.avatar = md.id;
        }
        for (const k of ['name', 'description', 'public']) if (b[k] !== undefined) c[k] = b[k];
        for (const id of members()) emit([id], { type: 'conversation.updated', conversation: convView(c, id) });
        return { status: 200, body: convView(c, uid) };
      }
      if (sub === '/invites' && method === 'POST') {
        if (!admin) return err(403, 'forbidden', 'admins only');
        const code = randomUUID().replace(/-/g, '').slice(0, 12);
        invites.set(code, c.id);
        return { status: 201, body: { code, expires_at: new Date(Date.now() + 7 * 86400e3).toISOString() } };
      }
      if (sub === '/members' && method === 'GET') return { status: 200, body: { members: members().map((id) => ({ user: pub(users.get(id)), role: c.members.get(id).role, joined_at: c.members.get(id).joined_at, last_read_seq: c.members.get(id).last_read_seq })) } };
      if (sub === '/members' && method === 'POST') {
        if (!admin) return err(403, 'forbidden', 'admins only');
        for (const id of b.user_ids ?? []) if (!friends.has(pair(uid, id))) return err(403, 'not_friends', 'only friends');
        for (const id of b.user_ids ?? []) if (!c.members.has(id)) { c.members.set(id, { role: 'member', joined_at: now(), last_read_seq: c.seq }); emit(members(), { type: 'member.added', conversation_id: c.id, user_id: id, role: 'member' }); }
        return { status: 204 };
      }
      if ((m = sub.match(/^\/members\/([^/]+)$/))) {
        const target = c.members.get(m[1]);
        if (!target) return err(404, 'not_found', 'not a member');
        if (method === 'DELETE') {
          if (m[1] === uid) { if (me.role === 'owner') return err(403, 'forbidden', 'transfer ownership first'); }
          else if (!(me.role === 'owner' || (me.role === 'admin' && target.role === 'member'))) return err(403, 'forbidden', 'not allowed');
          const before = members();
          c.members.delete(m[1]);
          emit(before, { type: 'member.removed', conversation_id: c.id, user_id: m[1] });
          return { status: 204 };
        }
        if (method === 'PATCH') {
          if (me.role !== 'owner' || m[1] === uid) return err(403, 'forbidden', 'owner only');
          target.role = b.role;
          emit(members(), { type: 'member.updated', conversation_id: c.id, user_id: m[1], role: b.role });
          return { status: 204 };
        }
      }
      if (sub === '/transfer' && method === 'POST') {
        if (me.role !== 'owner') return err(403, 'forbidden', 'owner only');
        const t = c.members.get(b.user_id);
        if (!t) return err(404, 'not_found', 'not a member');
        t.role = 'owner'; me.role = 'admin';
        emit(members(), { type: 'member.updated', conversation_id: c.id, user_id: b.user_id, role: 'owner' });
        emit(members(), { type: 'member.updated', conversation_id: c.id, user_id: uid, role: 'admin' });
        return { status: 204 };
      }
    }
    if ((m = path.match(/^\/invites\/([^/]+)\/accept$/)) && method === 'POST') {
      const c = convs.get(invites.get(m[1]));
      if (!c) return err(404, 'not_found', 'invalid invite');
      if (!c.members.has(uid)) { c.members.set(uid, { role: 'member', joined_at: now(), last_read_seq: c.seq }); emit([...c.members.keys()], { type: 'member.added', conversation_id: c.id, user_id: uid, role: 'member' }); }
      return { status: 200, body: convView(c, uid) };
    }
    return err(404, 'not_found', `no route ${method} ${path}`);
  }

  function markRead(uid, c, seq) {
    const me = c.members.get(uid);
    if (seq > me.last_read_seq) {
      me.last_read_seq = Math.min(seq, c.seq);
      emit([...c.members.keys()], { type: 'read', conversation_id: c.id, user_id: uid, seq: me.last_read_seq });
    }
  }

  function setPresence(uid, online) {
    const u = users.get(uid);
    if (!online) u.last_seen_at = now();
    emit(friendsOf(uid), { type: 'presence', user_id: uid, online, last_seen_at: u.last_seen_at }, false);
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (!url.pathname.startsWith('/api/v1')) { res.writeHead(404); res.end(); return; }
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      const buf = Buffer.concat(chunks);
      const auth0 = req.headers.authorization?.replace(/^Bearer /, '');
      const who = auth0 ? access.get(auth0) : undefined;
      const path = url.pathname.slice(7);
      if (path === '/media' && req.method === 'POST') {
        if (!who) { res.writeHead(401, { 'content-type': 'application/json' }); res.end(JSON.stringify({ error: { code: 'unauthenticated', message: 'no token' } })); return; }
        const t = sniffMedia(buf);
        const fail = (status, code, message) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify({ error: { code, message } })); };
        if (!t) return fail(415, 'unsupported_media_type', 'this type of file is not accepted');
        const limit = t.kind === 'video' ? 200 : 25;
        if (buf.length > limit * 1024 * 1024) return fail(413, 'too_large', `file is larger than the limit of ${limit} MiB for its type`);
        const md = { id: randomUUID(), owner: who, ...t, name: (url.searchParams.get('name') || 'file').split(/[\\/]/).pop(), bytes: buf, avatar: false };
        media.set(md.id, md);
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify(mediaOut(md)));
        return;
      }
      if (path === '/media/cookie' && req.method === 'POST') {
        if (!who) { res.writeHead(401); res.end(); return; }
        const tok = randomUUID();
        mediaCookies.set(tok, who);
        res.writeHead(204, { 'set-cookie': `chatnode_media=${tok}; Path=/api/v1/media; Max-Age=900; HttpOnly; SameSite=Strict` });
        res.end();
        return;
      }
      let mm;
      if (req.method === 'GET' && (mm = path.match(/^\/media\/([^/]+)(\/thumbnail)?$/))) {
        const cookie = /(?:^|;\s*)chatnode_media=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
        const viewer = who ?? (cookie ? mediaCookies.get(cookie) : undefined);
        const md = media.get(mm[1]);
        if (!md || !canRead(viewer, md) || (mm[2] && md.kind !== 'image')) { res.writeHead(404, { 'content-type': 'application/json' }); res.end(JSON.stringify({ error: { code: 'not_found', message: 'no such media' } })); return; }
        const inline = md.kind !== 'file';
        const headers = { 'content-type': md.mime, 'accept-ranges': 'bytes', 'x-content-type-options': 'nosniff', 'content-disposition': `${inline ? 'inline' : 'attachment'}; filename*=UTF-8''${encodeURIComponent(md.name)}` };
        const r = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
        if (r) {
          const start = r[1] ? Number(r[1]) : Math.max(0, md.bytes.length - Number(r[2]));
          const end = r[1] && r[2] ? Math.min(Number(r[2]), md.bytes.length - 1) : md.bytes.length - 1;
          res.writeHead(206, { ...headers, 'content-range': `bytes ${start}-${end}/${md.bytes.length}` });
          res.end(md.bytes.subarray(start, end + 1));
        } else {
          res.writeHead(200, headers);
          res.end(md.bytes);
        }
        return;
      }
      const raw = buf.toString('utf8');
      let body = {};
      try { body = raw ? JSON.parse(raw) : {}; } catch { res.writeHead(400, { 'content-type': 'application/json' }); res.end(JSON.stringify({ error: { code: 'invalid_request', message: 'bad json' } })); return; }
      const auth = req.headers.authorization?.replace(/^Bearer /, '');
      const uid = auth ? access.get(auth) : undefined;
      const r = route(req.method, url.pathname.slice(7) || '/', url.searchParams, body, uid);
      res.writeHead(r.status, r.body ? { 'content-type': 'application/json' } : {});
      res.end(r.body ? JSON.stringify(r.body) : undefined);
    });
  });

  server.on('upgrade', (req, socket) => {
    if (!req.url.startsWith('/api/v1/ws')) { socket.destroy(); return; }
    const conn = acceptUpgrade(req, socket);
    let uid = null;
    const t = setTimeout(() => { if (!uid) conn.close(4001, 'auth timeout'); }, 10000);
    conn.onmessage = (text) => {
      let f;
      try { f = JSON.parse(text); } catch { return; }
      if (!uid) {
        if (f.type !== 'auth' || !access.has(f.token)) { conn.close(4001, 'unauthenticated'); return; }
        uid = access.get(f.token);
        clearTimeout(t);
        conn.authed = true;
        const first = !(sockets.get(uid)?.size);
        if (!sockets.has(uid)) sockets.set(uid, new Set());
        sockets.get(uid).add(conn);
        const log = logs.get(uid) ?? [];
        conn.send(JSON.stringify({ type: 'ready', user: pub(users.get(uid), true), stream_pos: log.length ? log[log.length - 1].stream_pos : 0 }));
        if (first) setPresence(uid, true);
        return;
      }
      if (f.type === 'ping') conn.send(JSON.stringify({ type: 'pong' }));
      else if (f.type === 'sync') {
        const log = logs.get(uid) ?? [];
        for (const e of log) if (e.stream_pos > f.since) conn.send(JSON.stringify(e));
        conn.send(JSON.stringify({ type: 'synced', stream_pos: log.length ? log[log.length - 1].stream_pos : f.since }));
      } else if (f.type === 'send') {
        const r = sendMessage(uid, f.conversation_id, f);
        if (r.status >= 400) conn.send(JSON.stringify({ type: 'error', client_id: f.client_id, ...r.body.error }));
        else conn.send(JSON.stringify({ type: 'ack', client_id: f.client_id, message: r.body }));
      } else if (f.type === 'typing') {
        const c = convs.get(f.conversation_id);
        if (c?.members.has(uid)) emit([...c.members.keys()].filter((x) => x !== uid), { type: 'typing', conversation_id: c.id, user_id: uid, typing: !!f.typing }, false);
      } else if (f.type === 'read') {
        const c = convs.get(f.conversation_id);
        if (c?.members.has(uid)) markRead(uid, c, f.seq);
      }
    };
    conn.onclose = () => {
      clearTimeout(t);
      if (!uid) return;
      sockets.get(uid)?.delete(conn);
      if (!sockets.get(uid)?.size) setPresence(uid, false);
    };
  });

  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const p = server.address().port;
      resolve({
        url: `http://127.0.0.1:${p}`,
        close: () => new Promise((r) => { server.closeAllConnections?.(); for (const s of sockets.values()) for (const c of s) c.socket.destroy(); server.close(() => r()); }),
      });
    });
  });
}

if (process.argv[1] && process.argv[1].endsWith('mock-server.mjs')) {
  const m = await startMock(Number(process.argv[2] ?? 8099));
  console.log(`mock ChatNode API on ${m.url}`);
}
