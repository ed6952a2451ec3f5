// Voice messages: which recording format this browser has, the upload name and type for it,
// the recorder (MediaRecorder over the microphone: start, a running time, stop → one Blob and
// its length, cancel) and its errors in plain words. The browser objects are injected, so the
// state machine is unit-tested without a microphone.

/** Formats tried in order; Chromium and Firefox have the first, Safari mp4. */
export const VOICE_TYPES = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4'] as const;

/** Longest recording; it stops (and is kept) there. */
export const MAX_VOICE_MS = 15 * 60_000;
/** Shorter recordings are dropped as accidental taps. */
export const MIN_VOICE_MS = 400;

/** The first format the browser can record, or '' to let it choose. */
export function pickVoiceType(isTypeSupported: ((t: string) => boolean) | undefined): string {
  if (!isTypeSupported) return '';
  for (const t of VOICE_TYPES) {
    try {
      if (isTypeSupported(t)) return t;
    } catch {
      /* keep looking */
    }
  }
  return '';
}

/** The upload's file name and Content-Type (without codec parameters) for a recorded type. */
export function voiceUpload(mime: string): { name: string; type: string } {
  const base = (mime.split(';')[0] || '').trim().toLowerCase();
  if (base === 'audio/ogg') return { name: 'voice.ogg', type: 'audio/ogg' };
  if (base === 'audio/mp4' || base === 'video/mp4') return { name: 'voice.m4a', type: 'audio/mp4' };
  return { name: 'voice.webm', type: 'audio/webm' };
}

export const VOICE_TEXT = {
  unsupported: 'This browser cannot record voice messages.',
  denied: 'Microphone access is blocked. Allow it in the browser’s site settings (the icon left of the address), then try again.',
  noDevice: 'No microphone was found.',
  busy: 'The microphone is in use by another app.',
  insecure: 'Recording needs a secure connection (https).',
  failed: 'Recording failed. Please try again.',
} as const;

/** Plain words for a failed getUserMedia() or recorder. */
export function voiceErrorText(e: unknown): string {
  const name = (e as { name?: string } | null)?.name ?? '';
  if (name === 'NotAllowedError' || name === 'SecurityError') return VOICE_TEXT.denied;
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return VOICE_TEXT.noDevice;
  if (name === 'NotReadableError' || name === 'AbortError') return VOICE_TEXT.busy;
  if (name === 'NotSupportedError') return VOICE_TEXT.unsupported;
  return VOICE_TEXT.failed;
}

/** The parts of MediaRecorder the recorder uses. */
export interface RecorderLike {
  readonly mimeType: string;
  readonly state: string;
  start(timeslice?: number): void;
  stop(): void;
  ondataavailable: ((e: { data: Blob }) => void) | null;
  onstop: (() => void) | null;
  onerror: ((e: unknown) => void) | null;
}

export interface StreamLike {
  getTracks(): { stop(): void }[];
}

export interface VoiceEnv {
  getStream: () => Promise<StreamLike>;
  createRecorder: (stream: StreamLike, mimeType: string) => RecorderLike;
  /** The type to ask for ('' = the browser's choice). */
  mimeType: string;
  now?: () => number;
  makeBlob?: (parts: Blob[], type: string) => Blob;
}

export type VoiceState = 'idle' | 'starting' | 'recording' | 'stopping';

export interface VoiceResult {
  blob: Blob;
  /** The recorded type (with codecs, as the recorder reports it). */
  mime: string;
  durationMs: number;
}

/**
 * One recording at a time: `start()` asks for the microphone and records; `elapsed()` is the
 * running time; `stop()` resolves with the recording (null when too short or cancelled);
 * `cancel()` throws it away. The microphone is released when it ends either way.
 */
export class VoiceRecorder {
  state: VoiceState = 'idle';
  private rec: RecorderLike | null = null;
  private stream: StreamLike | null = null;
  private chunks: Blob[] = [];
  private startedAt = 0;
  private stoppedAt = 0;
  private cancelled = false;
  private done: ((r: VoiceResult | null) => void) | null = null;
  private finished: Promise<VoiceResult | null> | null = null;

  constructor(private env: VoiceEnv) {}

  private now(): number {
    return (this.env.now ?? Date.now)();
  }

  /** Milliseconds recorded so far (or in all, once stopped). */
  elapsed(): number {
    if (this.state === 'idle' || this.state === 'starting' || !this.startedAt) return 0;
    return (this.stoppedAt || this.now()) - this.startedAt;
  }

  async start(): Promise<void> {
    if (this.state !== 'idle') return;
    this.state = 'starting';
    this.cancelled = false;
    this.chunks = [];
    this.startedAt = 0;
    this.stoppedAt = 0;
    let stream: StreamLike;
    try {
      stream = await this.env.getStream();
    } catch (e) {
      this.state = 'idle';
      throw e;
    }
    if (this.cancelled) {
      for (const t of stream.getTracks()) t.stop();
      this.state = 'idle';
      return;
    }
    this.stream = stream;
    let rec: RecorderLike;
    try {
      rec = this.env.createRecorder(stream, this.env.mimeType);
    } catch (e) {
      this.release();
      this.state = 'idle';
      throw e;
    }
    this.rec = rec;
    this.finished = new Promise((r) => (this.done = r));
    rec.ondataavailable = (e) => {
      if (e.data && e.data.size > 0) this.chunks.push(e.data);
    };
    rec.onstop = () => this.finish();
    rec.onerror = () => {
      this.cancelled = true;
      this.finish();
    };
    rec.start(250);
    this.startedAt = this.now();
    this.state = 'recording';
  }

  private finish(): void {
    if (!this.stoppedAt) this.stoppedAt = this.now();
    const duration = this.stoppedAt - this.startedAt;
    const mime = this.rec?.mimeType || this.env.mimeType || 'audio/webm';
    this.release();
    this.rec = null;
    this.state = 'idle';
    const make = this.env.makeBlob ?? ((parts: Blob[], type: string) => new Blob(parts, { type }));
    const result = this.cancelled || duration < MIN_VOICE_MS || !this.chunks.length ? null : { blob: make(this.chunks, mime), mime, durationMs: Math.min(duration, MAX_VOICE_MS) };
    this.chunks = [];
    const d = this.done;
    this.done = null;
    d?.(result);
  }

  private release(): void {
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
  }

  /** Stops and resolves with the recording (null when it was too short or nothing came). */
  stop(): Promise<VoiceResult | null> {
    if (this.state === 'starting') {
      this.cancelled = true;
      return Promise.resolve(null);
    }
    if (this.state !== 'recording' || !this.rec) return this.finished ?? Promise.resolve(null);
    this.state = 'stopping';
    this.stoppedAt = this.now();
    const p = this.finished!;
    try {
      this.rec.stop();
    } catch {
      this.finish();
    }
    return p;
  }

  /** Throws the recording away. */
  cancel(): void {
    this.cancelled = true;
    if (this.state === 'recording' || this.state === 'stopping') {
      try {
        this.rec?.stop();
      } catch {
        this.finish();
      }
    }
  }
}
