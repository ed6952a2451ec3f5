import { describe, expect, it, vi } from 'vitest';
import { addPending, emptyState } from './chat';
import { ApiError } from './errors';
import { Outbox, sendFrame } from './outbox';
import {
  aggregateProgress,
  attachmentSummary,
  fitBox,
  formatBytes,
  formatDuration,
  isRetryable,
  messageKindFor,
  messagePreviewText,
  splitAttachments,
  squareCrop,
  uploadErrorText,
  uploadMedia,
  UploadQueue,
  type FileLike,
  type QueueSnapshot,
  type Upload,
  type XhrLike,
} from './media';
import { TokenManager } from './tokens';
import { fakeJwt, MemoryStorage, msg } from './testutil';
import type { Media } from './types';

const media = (p: Partial<Media> & { id: string }): Media => ({
  mime: 'image/png',
  size: 1000,
  name: `${p.id}.png`,
  url: `/api/v1/media/${p.id}`,
  width: 640,
  height: 480,
  thumbnail_url: `/api/v1/media/${p.id}/thumbnail`,
  duration_ms: null,
  ...p,
});

describe('formatBytes', () => {
  it('gives human-readable sizes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(532)).toBe('532 B');
    expect(formatBytes(1024)).toBe('1 KB');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(12 * 1024 + 100)).toBe('12.1 KB');
    expect(formatBytes(250 * 1024)).toBe('250 KB');
    expect(formatBytes(1.4 * 1024 * 1024)).toBe('1.4 MB');
    expect(formatBytes(25 * 1024 * 1024)).toBe('25 MB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3 GB');
  });
});

describe('messageKindFor (from the types the server decided)', () => {
  it('all images → image, all videos → video, anything else → file', () => {
    expect(messageKindFor([{ mime: 'image/png' }])).toBe('image');
    expect(messageKindFor([{ mime: 'image/png' }, { mime: 'image/jpeg' }])).toBe('image');
    expect(messageKindFor([{ mime: 'video/mp4' }])).toBe('video');
    expect(messageKindFor([{ mime: 'application/pdf' }])).toBe('file');
    expect(messageKindFor([{ mime: 'image/png' }, { mime: 'application/pdf' }])).toBe('file');
    expect(messageKindFor([{ mime: 'image/png' }, { mime: 'video/mp4' }])).toBe('file');
    // HTML or SVG uploads come back as text/plain: a file, never an image.
    expect(messageKindFor([{ mime: 'text/plain' }])).toBe('file');
    expect(messageKindFor([])).toBe('file');
  });
});

describe('fitBox', () => {
  it('fits in the box keeping the aspect ratio, never upscaling', () => {
    expect(fitBox(640, 480)).toEqual({ width: 320, height: 240 });
    expect(fitBox(480, 960)).toEqual({ width: 160, height: 320 });
    expect(fitBox(100, 50)).toEqual({ width: 100, height: 50 });
    expect(fitBox(4000, 10)).toEqual({ width: 320, height: 1 });
    expect(fitBox(null, 10)).toBeNull();
    expect(fitBox(0, 0)).toBeNull();
  });
});

describe('previews for the conversation list', () => {
  it('names photos, videos and files when the body is empty', () => {
    expect(attachmentSummary({ kind: 'image', body: '', attachments: [media({ id: 'a' })] })).toBe('📷 Photo');
    expect(attachmentSummary({ kind: 'image', body: '', attachments: [media({ id: 'a' }), media({ id: 'b' })] })).toBe('📷 2 photos');
    expect(attachmentSummary({ kind: 'video', body: '', attachments: [media({ id: 'v', mime: 'video/mp4' })] })).toBe('🎬 Video');
    expect(attachmentSummary({ kind: 'file', body: '', attachments: [media({ id: 'f', mime: 'application/pdf', name: 'report.pdf' })] })).toBe(
      '📎 report.pdf',
    );
    expect(attachmentSummary({ kind: 'file', body: '', attachments: [] })).toBe('📎 File');
  });
  it('shows the caption when there is one; text messages are unchanged', () => {
    expect(messagePreviewText(msg({ seq: 1, kind: 'image', body: 'Look!', attachments: [media({ id: 'a' })] }))).toBe('📷 Look!');
    expect(messagePreviewText(msg({ seq: 1, body: 'plain' }))).toBe('plain');
  });
});

describe('upload errors in plain words', () => {
  it('maps 413 and 415', () => {
    expect(uploadErrorText(new ApiError(413, 'too_large', 'file is larger than the limit of 25 MiB for its type'))).toBe(
      'Too large to send (the limit is 25 MB).',
    );
    expect(uploadErrorText(new ApiError(413, 'too_large', 'file is larger than any upload limit'))).toBe('Too large to send.');
    expect(uploadErrorText(new ApiError(415, 'unsupported_media_type', 'this type of file is not accepted'))).toBe(
      'This type of file is not accepted.',
    );
    expect(uploadErrorText(new ApiError(415, 'unsupported_media_type', 'not a valid image: truncated'))).toMatch(/could not be read/);
  });
  it('explains a dropped connection for an oversize file as too large', () => {
    const net = new ApiError(0, 'network', 'Network error');
    expect(uploadErrorText(net, { size: 30 * 1024 * 1024, type: 'application/pdf' })).toBe('Too large to send (the limit is 25 MB).');
    expect(uploadErrorText(net, { size: 30 * 1024 * 1024, type: 'video/mp4' })).toMatch(/cannot reach the server/);
    expect(uploadErrorText(net, { size: 300 * 1024 * 1024, type: 'video/mp4' })).toBe('Too large to send (the limit is 200 MB).');
    expect(uploadErrorText(new ApiError(429, 'rate_limited', 'slow down', 3))).toMatch(/Try again in 3 s/);
  });
  it('says when a retry may help', () => {
    expect(isRetryable(new ApiError(0, 'network', 'x'), { size: 10 })).toBe(true);
    expect(isRetryable(new ApiError(502, 'bad_gateway', 'x'))).toBe(true);
    expect(isRetryable(new ApiError(413, 'too_large', 'x'))).toBe(false);
    expect(isRetryable(new ApiError(415, 'unsupported_media_type', 'x'))).toBe(false);
    expect(isRetryable(new ApiError(0, 'network', 'x'), { size: 26 * 1024 * 1024 })).toBe(false);
  });
});

class FakeXhr implements XhrLike {
  static all: FakeXhr[] = [];
  method = '';
  url = '';
  headers: Record<string, string> = {};
  body: Blob | null = null;
  status = 0;
  responseText = '';
  aborted = false;
  upload: XhrLike['upload'] = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  onabort: (() => void) | null = null;
  constructor() {
    FakeXhr.all.push(this);
  }
  open(m: string, u: string) {
    this.method = m;
    this.url = u;
  }
  setRequestHeader(k: string, v: string) {
    this.headers[k] = v;
  }
  send(b: Blob | null) {
    this.body = b;
  }
  abort() {
    this.aborted = true;
    this.onabort?.();
  }
  getResponseHeader() {
    return null;
  }
  progress(loaded: number, total: number) {
    this.upload.onprogress?.({ loaded, total, lengthComputable: true });
  }
  respond(status: number, body: unknown) {
    this.status = status;
    this.responseText = JSON.stringify(body);
    this.onload?.();
  }
}
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('uploadMedia (XMLHttpRequest)', () => {
  it('posts the raw bytes with name, type and bearer token, and reports progress', async () => {
    FakeXhr.all = [];
    const file = new Blob(['x'.repeat(100)], { type: 'application/pdf' });
    const progress: [number, number][] = [];
    const up = uploadMedia(file, 'my report (1).pdf', {
      getToken: async () => 'tok',
      refresh: async () => 'tok2',
      onProgress: (l, t) => progress.push([l, t]),
      createXhr: () => new FakeXhr(),
    });
    await tick();
    const x = FakeXhr.all[0];
    expect(x.method).toBe('POST');
    expect(x.url).toBe('/api/v1/media?name=my%20report%20(1).pdf');
    expect(x.headers).toEqual({ Authorization: 'Bearer tok', 'Content-Type': 'application/pdf' });
    expect(x.body).toBe(file);
    x.progress(50, 100);
    x.respond(201, media({ id: 'm1', mime: 'application/pdf' }));
    await expect(up.promise).resolves.toMatchObject({ id: 'm1' });
    expect(progress).toEqual([[50, 100]]);
  });

  it('retries once with a refreshed token on 401; other errors carry code and message', async () => {
    FakeXhr.all = [];
    const refresh = vi.fn(async () => 'fresh');
    const up = uploadMedia(new Blob(['a']), 'a.txt', { getToken: async () => 'stale', refresh, createXhr: () => new FakeXhr() });
    await tick();
    FakeXhr.all[0].respond(401, { error: { code: 'unauthenticated', message: 'expired' } });
    await tick();
    await tick();
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(FakeXhr.all[1].headers.Authorization).toBe('Bearer fresh');
    FakeXhr.all[1].respond(413, { error: { code: 'too_large', message: 'file is larger than the limit of 25 MiB for its type' } });
    const err = await up.promise.catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 413, code: 'too_large' });
  });

  it('a network failure and an abort are ApiErrors too', async () => {
    FakeXhr.all = [];
    const a = uploadMedia(new Blob(['a']), 'a', { getToken: async () => 't', refresh: async () => 't', createXhr: () => new FakeXhr() });
    await tick();
    FakeXhr.all[0].onerror?.();
    await expect(a.promise).rejects.toMatchObject({ code: 'network' });
    const b = uploadMedia(new Blob(['a']), 'a', { getToken: async () => 't', refresh: async () => 't', createXhr: () => new FakeXhr() });
    await tick();
    b.abort();
    await expect(b.promise).rejects.toMatchObject({ code: 'aborted' });
  });
});

/** A controllable upload per file. */
function fakeUploads() {
  const jobs: { file: FileLike; progress: (l: number, t: number) => void; resolve: (m: Media) => void; reject: (e: unknown) => void; aborted: boolean }[] = [];
  const upload = (file: FileLike, progress: (l: number, t: number) => void): Upload => {
    let resolve!: (m: Media) => void;
    let reject!: (e: unknown) => void;
    const promise = new Promise<Media>((a, b) => {
      resolve = a;
      reject = b;
    });
    promise.catch(() => undefined);
    const job = { file, progress, resolve, reject, aborted: false };
    jobs.push(job);
    return {
      promise,
      abort: () => {
        job.aborted = true;
        reject(new ApiError(0, 'aborted', 'x'));
      },
    };
  };
  return { jobs, upload };
}
const file = (name: string, size: number, type = 'image/png'): FileLike => ({ name, size, type });

describe('UploadQueue', () => {
  it('uploads a few at a time, aggregates progress, and hands out the media in order', async () => {
    const { jobs, upload } = fakeUploads();
    const revoked: string[] = [];
    const q = new UploadQueue<FileLike>({ upload, concurrency: 2, previewUrl: (f) => `blob:${f.name}`, revokeUrl: (u) => revoked.push(u) });
    let snap!: QueueSnapshot;
    q.subscribe((s) => (snap = s));
    q.add([file('a.png', 100), file('b.pdf', 300, 'application/pdf'), file('c.png', 100)]);
    expect(jobs.map((j) => j.file.name)).toEqual(['a.png', 'b.pdf']);
    expect(snap.items.map((i) => i.status)).toEqual(['uploading', 'uploading', 'queued']);
    expect(snap.items.map((i) => i.preview)).toEqual(['blob:a.png', null, 'blob:c.png']);
    expect(snap.busy).toBe(true);

    jobs[0].progress(50, 100);
    jobs[1].progress(150, 300);
    expect(snap.progress).toBeCloseTo(200 / 500);
    jobs[0].resolve(media({ id: 'A' }));
    await tick();
    expect(jobs.map((j) => j.file.name)).toEqual(['a.png', 'b.pdf', 'c.png']);
    expect(snap.progress).toBeCloseTo(250 / 500);
    expect(q.media()).toBeNull();

    const settled = q.settled();
    jobs[2].resolve(media({ id: 'C' }));
    jobs[1].resolve(media({ id: 'B', mime: 'application/pdf' }));
    await settled;
    expect(snap).toMatchObject({ busy: false, failed: false, ready: true, progress: 1 });
    expect(q.media()!.map((m) => m.id)).toEqual(['A', 'B', 'C']);
    q.clear();
    expect(revoked).toEqual(['blob:a.png', 'blob:c.png']);
    expect(snap.items).toEqual([]);
  });

  it('a failed upload shows plain words; retry uploads it again; remove cancels and forgets', async () => {
    const { jobs, upload } = fakeUploads();
    const q = new UploadQueue<FileLike>({ upload });
    let snap!: QueueSnapshot;
    q.subscribe((s) => (snap = s));
    q.add([file('big.mov', 10, 'video/quicktime'), file('x.exe', 10, 'application/x-msdownload')]);
    jobs[0].reject(new ApiError(0, 'network', 'Network error'));
    jobs[1].reject(new ApiError(415, 'unsupported_media_type', 'this type of file is not accepted'));
    await q.settled();
    expect(snap.failed).toBe(true);
    expect(snap.ready).toBe(false);
    expect(snap.items.map((i) => [i.status, i.error, i.retryable])).toEqual([
      ['failed', 'Upload failed: cannot reach the server. Check your connection and retry.', true],
      ['failed', 'This type of file is not accepted.', false],
    ]);
    // Failed files do not count in the progress.
    expect(snap.progress).toBe(0);

    q.retry(snap.items[0].key);
    expect(jobs).toHaveLength(3);
    expect(snap.items[0]).toMatchObject({ status: 'uploading', error: null });
    q.remove(snap.items[1].key);
    jobs[2].resolve(media({ id: 'V', mime: 'video/quicktime' }));
    await q.settled();
    expect(snap.ready).toBe(true);
    expect(q.media()!.map((m) => m.id)).toEqual(['V']);

    // Removing a running upload aborts it, and its late answer is ignored.
    q.add([file('late.png', 10)]);
    const key = snap.items[1].key;
    q.remove(key);
    expect(jobs[3].aborted).toBe(true);
    expect(snap.items.map((i) => i.name)).toEqual(['big.mov']);
  });

  it('accepts at most the limit and says how many were refused', () => {
    const { upload } = fakeUploads();
    const q = new UploadQueue<FileLike>({ upload, max: 3 });
    expect(q.add([file('1', 1), file('2', 1)])).toBe(0);
    expect(q.add([file('3', 1), file('4', 1), file('5', 1)])).toBe(2);
    expect(q.size).toBe(3);
  });

  it('aggregateProgress weighs by size and counts finished files whole', () => {
    expect(aggregateProgress([])).toBe(0);
    expect(
      aggregateProgress([
        { status: 'done', loaded: 0, total: 100, size: 100 },
        { status: 'uploading', loaded: 100, total: 300, size: 300 },
      ]),
    ).toBeCloseTo(0.5);
    expect(aggregateProgress([{ status: 'done', loaded: 0, total: 0, size: 0 }])).toBe(1);
  });
});

describe('media messages in the outbox and chat state', () => {
  it('a pending media message keeps its kind and attachments', () => {
    const a = media({ id: 'A' });
    const s = addPending(emptyState('me'), {
      client_id: 'c-1',
      conversation_id: 'c1',
      body: '',
      reply_to_seq: null,
      created_at: '2026-01-01T00:00:00Z',
      kind: 'image',
      attachments: [a],
    });
    expect(s.pending.c1[0]).toMatchObject({ kind: 'image', body: '', attachments: [a], status: 'sending' });
  });
});

describe('media messages through the outbox', () => {
  it('the send frame carries kind and attachment_ids; the stored item survives a reload', () => {
    const storage = new MemoryStorage();
    const item = {
      client_id: 'c-9',
      conversation_id: 'c1',
      body: 'caption',
      reply_to_seq: 4,
      created_at: '2026-01-01T00:00:00Z',
      kind: 'file' as const,
      attachments: [media({ id: 'P', mime: 'application/pdf' }), media({ id: 'Q' })],
    };
    new Outbox(storage, 'me').add(item);
    const again = new Outbox(storage, 'me').list()[0];
    expect(sendFrame(again)).toEqual({
      type: 'send',
      conversation_id: 'c1',
      client_id: 'c-9',
      body: 'caption',
      kind: 'file',
      attachment_ids: ['P', 'Q'],
      reply_to_seq: 4,
    });
    // Text items (also ones stored before media existed) stay plain.
    expect(sendFrame({ client_id: 'x', conversation_id: 'c1', body: 'hi', reply_to_seq: null, created_at: '' })).toEqual({
      type: 'send',
      conversation_id: 'c1',
      client_id: 'x',
      body: 'hi',
      kind: 'text',
    });
  });
});

describe('avatar crop', () => {
  it('takes the centred square, at most the output size', () => {
    expect(squareCrop(800, 600, 256)).toEqual({ sx: 100, sy: 0, side: 600, out: 256 });
    expect(squareCrop(100, 300, 256)).toEqual({ sx: 0, sy: 100, side: 100, out: 100 });
  });
});

describe('TokenManager.onAccessToken (renews the media cookie)', () => {
  it('is called for every new access token', async () => {
    const seen: string[] = [];
    const now = Date.now();
    const t1 = fakeJwt(Math.floor(now / 1000) + 900);
    const t2 = fakeJwt(Math.floor(now / 1000) + 901);
    const tm = new TokenManager({
      storage: new MemoryStorage(),
      lock: (_n, fn) => fn(),
      refreshCall: async () => ({ access_token: t2, refresh_token: 'r2' }),
      setTimer: () => 0,
      clearTimer: () => undefined,
      onAccessToken: (t) => seen.push(t),
    });
    tm.setTokens({ access_token: t1, refresh_token: 'r1' });
    await tm.refresh();
    expect(seen).toEqual([t1, t2]);
  });
});

describe('audio (voice messages) and files of unknown type', () => {
  it('puts audio in players, unknown types (octet-stream) on download cards', () => {
    const items = [
      media({ id: 'i' }),
      media({ id: 'v', mime: 'video/mp4' }),
      media({ id: 'a', mime: 'audio/webm' }),
      media({ id: 'b', mime: 'application/octet-stream', name: 'tool.bin' }),
      media({ id: 'p', mime: 'application/pdf' }),
    ];
    const s = splitAttachments(items);
    expect(s.images.map((x) => x.id)).toEqual(['i']);
    expect(s.videos.map((x) => x.id)).toEqual(['v']);
    expect(s.audios.map((x) => x.id)).toEqual(['a']);
    expect(s.files.map((x) => x.id)).toEqual(['b', 'p']);
  });

  it('previews an audio message as a voice message', () => {
    const a = media({ id: 'a', mime: 'audio/ogg', duration_ms: 4000 });
    expect(messagePreviewText(msg({ seq: 1, kind: 'audio', body: '', attachments: [a] }))).toBe('🎤 Voice message');
    expect(messagePreviewText(msg({ seq: 1, kind: 'audio', body: '', attachments: [a, { ...a, id: 'b' }] }))).toBe('🎤 2 voice messages');
    expect(messagePreviewText(msg({ seq: 1, kind: 'file', body: '', attachments: [media({ id: 'b', mime: 'application/octet-stream', name: 'tool.bin' })] }))).toBe('📎 tool.bin');
  });

  it('formats durations', () => {
    expect(formatDuration(7_200)).toBe('0:07');
    expect(formatDuration(65_000)).toBe('1:05');
    expect(formatDuration(3_723_000)).toBe('1:02:03');
    expect(formatDuration(null)).toBe('');
    expect(formatDuration(undefined)).toBe('');
  });
});
