// Media for messages and avatars: uploads (XMLHttpRequest, for progress), the pending-attachment
// queue behind the composer, which message kind a set of uploads makes, sizes and previews.
// Plain TypeScript, unit-tested in media.test.ts (the XHR is injected).
import { ApiError, friendlyError } from './errors';
import type { Media, Message, MessageKind } from './types';

/** At most this many attachments per message (the server's limit). */
export const MAX_ATTACHMENTS = 10;
/** The server's default limits (configurable there); used only to explain a dropped connection. */
export const DEFAULT_FILE_LIMIT = 25 * 1024 * 1024;
export const DEFAULT_VIDEO_LIMIT = 200 * 1024 * 1024;

/** "532 B", "12 KB", "1.4 MB", "2.1 GB" (1024-based, as file managers mostly show). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const s = v >= 100 || Number.isInteger(v) ? Math.round(v).toString() : v.toFixed(1).replace(/\.0$/, '');
  return `${s} ${units[i]}`;
}

export const isImage = (m: Pick<Media, 'mime'>) => m.mime.startsWith('image/');
export const isVideo = (m: Pick<Media, 'mime'>) => m.mime.startsWith('video/');
export const isAudio = (m: Pick<Media, 'mime'>) => m.mime.startsWith('audio/');

/**
 * How a message's attachments are shown: pictures as thumbnails, videos and audio (voice
 * messages) in the browser's own players, everything else, including files of a type the
 * server does not know (`application/octet-stream`, served as a download), as a file card.
 */
export function splitAttachments<M extends Pick<Media, 'mime'>>(items: M[]): { images: M[]; videos: M[]; audios: M[]; files: M[] } {
  const images = items.filter(isImage);
  const videos = items.filter(isVideo);
  const audios = items.filter(isAudio);
  const files = items.filter((a) => !isImage(a) && !isVideo(a) && !isAudio(a));
  return { images, videos, audios, files };
}

/** "0:07", "1:05", "1:02:03" for a duration in milliseconds; '' when unknown. */
export function formatDuration(ms: number | null | undefined): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) return '';
  const t = Math.round(ms / 1000);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const s = String(t % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/**
 * The message kind for a set of uploads (typed by the server from their bytes): all images →
 * `image`, all videos → `video`, anything else or a mix → `file` (which may carry anything).
 */
export function messageKindFor(list: Pick<Media, 'mime'>[]): Exclude<MessageKind, 'text' | 'system'> {
  if (list.length && list.every(isImage)) return 'image';
  if (list.length && list.every(isVideo)) return 'video';
  return 'file';
}

/** Display size for a thumbnail: fits in `max`×`max`, keeps the aspect ratio, never upscales. */
export function fitBox(width: number | null, height: number | null, max = 320): { width: number; height: number } | null {
  if (!width || !height || width <= 0 || height <= 0) return null;
  const scale = Math.min(1, max / width, max / height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/** Conversation-list text for a message with attachments ("📷 Photo", "🎬 Video", "🎤 Voice message", "📎 report.pdf"). */
export function attachmentSummary(m: Pick<Message, 'kind' | 'body' | 'attachments'>): string {
  const list = m.attachments ?? [];
  const caption = m.body.trim();
  let icon: string;
  let label: string;
  if (m.kind === 'image' || (list.length && list.every(isImage))) {
    icon = '📷';
    label = list.length > 1 ? `${list.length} photos` : 'Photo';
  } else if (m.kind === 'video' || (list.length && list.every(isVideo))) {
    icon = '🎬';
    label = list.length > 1 ? `${list.length} videos` : 'Video';
  } else if (m.kind === 'audio' || (list.length && list.every(isAudio))) {
    icon = '🎤';
    label = list.length > 1 ? `${list.length} voice messages` : 'Voice message';
  } else {
    icon = '📎';
    label = list.length > 1 ? `${list.length} files` : list[0]?.name || 'File';
  }
  return `${icon} ${caption || label}`;
}

/** The text of a message for previews (conversation list, notifications). */
export function messagePreviewText(m: Pick<Message, 'kind' | 'body' | 'attachments'>): string {
  if (m.kind === 'image' || m.kind === 'video' || m.kind === 'audio' || m.kind === 'file') return attachmentSummary(m);
  return m.body;
}

/**
 * The attachments in words, for screen readers ("Photo sunset.png", "3 photos", "Voice message,
 * 0:07", "File report.pdf, 12 KB"): what a sighted person sees at a glance in the bubble.
 */
export function attachmentsInWords(list: Pick<Media, 'mime' | 'name' | 'size' | 'duration_ms'>[]): string {
  if (list.length > 1 && list.every(isImage)) return `${list.length} photos`;
  return list
    .map((a) => {
      if (isImage(a)) return `Photo ${a.name}`;
      if (isVideo(a)) return `Video ${a.name}`;
      if (isAudio(a)) return ['Voice message', formatDuration(a.duration_ms)].filter(Boolean).join(', ');
      return `File ${a.name}, ${formatBytes(a.size)}`;
    })
    .join('; ');
}

// ---------- errors ----------

/** Plain words for a failed upload of `file` (size used to explain a dropped connection). */
export function uploadErrorText(err: unknown, file?: { size: number; type?: string }): string {
  if (err instanceof ApiError) {
    // Also a 413, but about the account's quota, not this file: its own words, with the numbers.
    if (err.code === 'quota_exceeded') return friendlyError(err);
    if (err.status === 413 || err.code === 'too_large') {
      const mib = /(\d+)\s*MiB/i.exec(err.message)?.[1];
      return mib ? `Too large to send (the limit is ${mib} MB).` : 'Too large to send.';
    }
    if (err.status === 415 || err.code === 'unsupported_media_type') {
      return /valid image/i.test(err.message) ? 'This image could not be read (it may be damaged).' : 'This type of file is not accepted.';
    }
    if (err.code === 'network' && file) {
      // The server refuses oversize uploads before reading them, which a browser may report as
      // a dropped connection instead of the 413 answer.
      const limit = file.type?.startsWith('video/') ? DEFAULT_VIDEO_LIMIT : DEFAULT_FILE_LIMIT;
      if (file.size > limit) return `Too large to send (the limit is ${Math.round(limit / 1024 / 1024)} MB).`;
      return 'Upload failed: cannot reach the server. Check your connection and retry.';
    }
    if (err.code === 'aborted') return 'Upload cancelled.';
  }
  return friendlyError(err);
}

/** Whether uploading the same file again might work (not for too large / not accepted). */
export function isRetryable(err: unknown, file?: { size: number; type?: string }): boolean {
  if (!(err instanceof ApiError)) return true;
  if ([400, 403, 404, 413, 415, 422].includes(err.status)) return false;
  if (err.code === 'too_large' || err.code === 'unsupported_media_type') return false;
  return !/^Too large/.test(uploadErrorText(err, file));
}

// ---------- one upload ----------

/** The part of XMLHttpRequest an upload uses (a fake one in tests). */
export interface XhrLike {
  open(method: string, url: string): void;
  setRequestHeader(name: string, value: string): void;
  send(body: Blob | null): void;
  abort(): void;
  readonly status: number;
  readonly responseText: string;
  getResponseHeader(name: string): string | null;
  upload: { onprogress: ((e: { loaded: number; total: number; lengthComputable: boolean }) => void) | null };
  onload: (() => void) | null;
  onerror: (() => void) | null;
  onabort: (() => void) | null;
}

export interface UploadOptions {
  /** A valid access token. */
  getToken: () => Promise<string>;
  /** A fresh access token after a 401. */
  refresh: () => Promise<string>;
  onProgress?: (loaded: number, total: number) => void;
  createXhr?: () => XhrLike;
  base?: string;
  /** The Content-Type to send (default: the blob's type). */
  contentType?: string;
  /** More query parameters (`duration_ms` for a voice message). */
  query?: Record<string, string | number>;
}

export interface Upload {
  promise: Promise<Media>;
  abort(): void;
}

function errorFromXhr(x: XhrLike): ApiError {
  let code = `http_${x.status}`;
  let message = `HTTP ${x.status}`;
  try {
    const b = JSON.parse(x.responseText);
    if (b?.error) {
      code = b.error.code ?? code;
      message = b.error.message ?? message;
    }
  } catch {
    /* not JSON */
  }
  const ra = x.getResponseHeader('Retry-After');
  return new ApiError(x.status, code, message, ra ? Number(ra) || null : null);
}

/**
 * Uploads a file as the raw request body (`POST /media?name=…` with its Content-Type), reporting
 * progress; retries once with a refreshed token on 401. Resolves with the stored Media.
 */
export function uploadMedia(file: Blob, name: string, o: UploadOptions): Upload {
  let current: XhrLike | null = null;
  let aborted = false;
  const base = o.base ?? '/api/v1';
  const once = (token: string) =>
    new Promise<Media>((resolve, reject) => {
      const x = (o.createXhr ?? (() => new XMLHttpRequest() as unknown as XhrLike))();
      current = x;
      const extra = Object.entries(o.query ?? {}).map(([k, v]) => `&${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
      x.open('POST', `${base}/media?name=${encodeURIComponent(name)}${extra.join('')}`);
      x.setRequestHeader('Authorization', `Bearer ${token}`);
      x.setRequestHeader('Content-Type', o.contentType || file.type || 'application/octet-stream');
      x.upload.onprogress = (e) => o.onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
      x.onload = () => {
        if (x.status >= 200 && x.status < 300) {
          try {
            resolve(JSON.parse(x.responseText) as Media);
          } catch {
            reject(new ApiError(x.status, 'bad_response', 'The server sent an unexpected answer.'));
          }
        } else reject(errorFromXhr(x));
      };
      x.onerror = () => reject(new ApiError(0, 'network', 'Network error'));
      x.onabort = () => reject(new ApiError(0, 'aborted', 'Upload cancelled'));
      x.send(file);
    });
  const promise = (async () => {
    try {
      return await once(await o.getToken());
    } catch (e) {
      if (!aborted && e instanceof ApiError && e.status === 401) {
        o.onProgress?.(0, file.size);
        return once(await o.refresh());
      }
      throw e;
    }
  })();
  return {
    promise,
    abort() {
      aborted = true;
      current?.abort();
    },
  };
}

// ---------- the queue of pending attachments ----------

export type UploadStatus = 'queued' | 'uploading' | 'done' | 'failed';

/** What a queued file needs from a File (a plain object in tests). */
export interface FileLike {
  name: string;
  size: number;
  type: string;
}

export interface UploadItem {
  key: string;
  name: string;
  size: number;
  /** The type the browser guessed (the server decides for real). */
  type: string;
  /** A blob: URL for an image preview, or null. */
  preview: string | null;
  status: UploadStatus;
  loaded: number;
  total: number;
  media: Media | null;
  error: string | null;
  /** For a failed upload: whether a retry might help. */
  retryable: boolean;
}

export interface QueueSnapshot {
  items: UploadItem[];
  /** 0..1 over all files (bytes sent / bytes in total). */
  progress: number;
  /** Some upload is queued or running. */
  busy: boolean;
  /** Some upload failed. */
  failed: boolean;
  /** Every file uploaded (and there is at least one). */
  ready: boolean;
}

/** Bytes sent over all items (a done item counts whole, a failed one not at all). */
export function aggregateProgress(items: Pick<UploadItem, 'status' | 'loaded' | 'total' | 'size'>[]): number {
  let sent = 0;
  let total = 0;
  for (const i of items) {
    if (i.status === 'failed') continue;
    const size = i.total || i.size || 0;
    total += size;
    sent += i.status === 'done' ? size : Math.min(i.loaded, size);
  }
  if (!total) return items.length && items.every((i) => i.status === 'done') ? 1 : 0;
  return Math.min(1, sent / total);
}

export interface QueueOptions<F extends FileLike> {
  /** Starts one upload. */
  upload: (file: F, onProgress: (loaded: number, total: number) => void) => Upload;
  /** A preview URL for an image file (URL.createObjectURL in the browser). */
  previewUrl?: (file: F) => string | null;
  revokeUrl?: (url: string) => void;
  /** Uploads running at once. */
  concurrency?: number;
  max?: number;
}

/**
 * The files attached in the composer. Each starts uploading as soon as it is added (a few at a
 * time); the composer sends the message once all are done. A Svelte store (`subscribe`).
 */
export class UploadQueue<F extends FileLike = File> {
  private list: (UploadItem & { file: F; job: Upload | null })[] = [];
  private subs = new Set<(s: QueueSnapshot) => void>();
  private waiters: (() => void)[] = [];
  private seq = 0;
  private o: Required<Omit<QueueOptions<F>, 'previewUrl' | 'revokeUrl'>> & Pick<QueueOptions<F>, 'previewUrl' | 'revokeUrl'>;

  constructor(opts: QueueOptions<F>) {
    this.o = { concurrency: 2, max: MAX_ATTACHMENTS, ...opts };
  }

  snapshot(): QueueSnapshot {
    const items = this.list.map(({ file: _f, job: _j, ...rest }) => ({ ...rest }));
    const busy = items.some((i) => i.status === 'queued' || i.status === 'uploading');
    const failed = items.some((i) => i.status === 'failed');
    return { items, progress: aggregateProgress(items), busy, failed, ready: items.length > 0 && !busy && !failed };
  }

  subscribe(fn: (s: QueueSnapshot) => void): () => void {
    this.subs.add(fn);
    fn(this.snapshot());
    return () => this.subs.delete(fn);
  }

  private emit(): void {
    const s = this.snapshot();
    for (const fn of this.subs) fn(s);
    if (!s.busy) {
      const w = this.waiters;
      this.waiters = [];
      for (const r of w) r();
    }
  }

  get size(): number {
    return this.list.length;
  }

  /** Adds files (up to the limit); returns how many were refused for being over it. */
  add(files: Iterable<F>): number {
    let refused = 0;
    for (const file of files) {
      if (this.list.length >= this.o.max) {
        refused++;
        continue;
      }
      const isImg = file.type.startsWith('image/');
      this.list.push({
        key: `u${++this.seq}`,
        name: file.name || 'file',
        size: file.size,
        type: file.type,
        preview: isImg && this.o.previewUrl ? this.o.previewUrl(file) : null,
        status: 'queued',
        loaded: 0,
        total: file.size,
        media: null,
        error: null,
        retryable: false,
        file,
        job: null,
      });
    }
    this.pump();
    this.emit();
    return refused;
  }

  private pump(): void {
    let running = this.list.filter((i) => i.status === 'uploading').length;
    for (const item of this.list) {
      if (running >= this.o.concurrency) break;
      if (item.status !== 'queued') continue;
      running++;
      this.start(item);
    }
  }

  private start(item: UploadItem & { file: F; job: Upload | null }): void {
    item.status = 'uploading';
    item.loaded = 0;
    item.error = null;
    const job = this.o.upload(item.file, (loaded, total) => {
      if (item.job !== job) return;
      item.loaded = loaded;
      if (total) item.total = total;
      this.emit();
    });
    item.job = job;
    job.promise.then(
      (media) => {
        if (item.job !== job) return;
        item.job = null;
        item.status = 'done';
        item.loaded = item.total;
        item.media = media;
        this.pump();
        this.emit();
      },
      (err) => {
        if (item.job !== job) return;
        item.job = null;
        item.status = 'failed';
        item.error = uploadErrorText(err, item.file);
        item.retryable = isRetryable(err, item.file);
        this.pump();
        this.emit();
      },
    );
  }

  /** Uploads a failed file again. */
  retry(key: string): void {
    const item = this.list.find((i) => i.key === key);
    if (!item || item.status !== 'failed') return;
    item.status = 'queued';
    item.error = null;
    item.loaded = 0;
    this.pump();
    this.emit();
  }

  /** Removes a file (cancelling its upload). */
  remove(key: string): void {
    const item = this.list.find((i) => i.key === key);
    if (!item) return;
    this.list = this.list.filter((i) => i !== item);
    this.drop(item);
    this.pump();
    this.emit();
  }

  private drop(item: UploadItem & { job: Upload | null }): void {
    const job = item.job;
    item.job = null;
    job?.abort();
    if (item.preview) this.o.revokeUrl?.(item.preview);
  }

  /** Forgets everything (after sending, or when the chat closes). */
  clear(): void {
    const old = this.list;
    this.list = [];
    for (const i of old) this.drop(i);
    this.emit();
  }

  /** Resolves when nothing is queued or uploading. */
  settled(): Promise<void> {
    if (!this.snapshot().busy) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  /** The uploaded media, in the order added (only when every file is done). */
  media(): Media[] | null {
    if (!this.list.length || this.list.some((i) => i.status !== 'done' || !i.media)) return null;
    return this.list.map((i) => i.media!);
  }
}

// ---------- avatars ----------

/** The centred square of a `w`×`h` image, scaled to at most `size` px: source rect and output size. */
export function squareCrop(w: number, h: number, size = 256): { sx: number; sy: number; side: number; out: number } {
  const side = Math.min(w, h);
  return { sx: Math.floor((w - side) / 2), sy: Math.floor((h - side) / 2), side, out: Math.max(1, Math.min(size, side)) };
}

/**
 * An avatar-ready image: the centred square, at most `size` px, as JPEG. Falls back to the
 * original file when the browser cannot decode or draw it (the server then decides).
 */
export async function makeAvatar(file: File, size = 256): Promise<Blob> {
  try {
    const bmp = await createImageBitmap(file);
    const c = squareCrop(bmp.width, bmp.height, size);
    const canvas = document.createElement('canvas');
    canvas.width = c.out;
    canvas.height = c.out;
    const ctx = canvas.getContext('2d');
    if (!ctx) return file;
    ctx.fillStyle = '#fff';
    ctx.fillRect(0, 0, c.out, c.out);
    ctx.drawImage(bmp, c.sx, c.sy, c.side, c.side, 0, 0, c.out, c.out);
    bmp.close?.();
    const blob = await new Promise<Blob | null>((r) => canvas.toBlob(r, 'image/jpeg', 0.9));
    return blob ?? file;
  } catch {
    return file;
  }
}
