import { describe, expect, it } from 'vitest';
import { MIN_VOICE_MS, pickVoiceType, voiceErrorText, VOICE_TEXT, VoiceRecorder, voiceUpload, type RecorderLike } from './voice';

class FakeRecorder implements RecorderLike {
  state = 'inactive';
  ondataavailable: ((e: { data: Blob }) => void) | null = null;
  onstop: (() => void) | null = null;
  onerror: ((e: unknown) => void) | null = null;
  constructor(public mimeType: string) {}
  start() {
    this.state = 'recording';
  }
  stop() {
    this.state = 'inactive';
    this.ondataavailable?.({ data: new Blob(['abc'], { type: this.mimeType }) });
    this.onstop?.();
  }
}

function setup() {
  let t = 1000;
  const stopped: string[] = [];
  const rec = new VoiceRecorder({
    mimeType: 'audio/webm;codecs=opus',
    now: () => t,
    getStream: async () => ({ getTracks: () => [{ stop: () => stopped.push('track') }] }),
    createRecorder: (_s, type) => new FakeRecorder(type),
  });
  return { rec, stopped, advance: (ms: number) => (t += ms) };
}

describe('voice recording', () => {
  it('picks a supported type and names the upload', () => {
    expect(pickVoiceType((t) => t === 'audio/webm')).toBe('audio/webm');
    expect(pickVoiceType((t) => t.startsWith('audio/mp4'))).toBe('audio/mp4');
    expect(pickVoiceType(undefined)).toBe('');
    expect(voiceUpload('audio/webm;codecs=opus')).toEqual({ name: 'voice.webm', type: 'audio/webm' });
    expect(voiceUpload('audio/ogg; codecs=opus')).toEqual({ name: 'voice.ogg', type: 'audio/ogg' });
    expect(voiceUpload('audio/mp4')).toEqual({ name: 'voice.m4a', type: 'audio/mp4' });
  });
  it('records, times and stops with the blob and its length; releases the microphone', async () => {
    const { rec, stopped, advance } = setup();
    await rec.start();
    expect(rec.state).toBe('recording');
    advance(2500);
    expect(rec.elapsed()).toBe(2500);
    const r = await rec.stop();
    expect(r?.durationMs).toBe(2500);
    expect(r?.mime).toBe('audio/webm;codecs=opus');
    expect(r?.blob.size).toBe(3);
    expect(stopped).toEqual(['track']);
    expect(rec.state).toBe('idle');
  });
  it('drops a too-short recording and a cancelled one', async () => {
    const a = setup();
    await a.rec.start();
    a.advance(MIN_VOICE_MS - 1);
    expect(await a.rec.stop()).toBeNull();
    const b = setup();
    await b.rec.start();
    b.advance(3000);
    b.rec.cancel();
    expect(b.rec.state).toBe('idle');
    expect(b.stopped).toEqual(['track']);
  });
  it('a denied microphone leaves it idle with plain words', async () => {
    const rec = new VoiceRecorder({
      mimeType: '',
      getStream: async () => {
        throw Object.assign(new Error('no'), { name: 'NotAllowedError' });
      },
      createRecorder: (_s, t) => new FakeRecorder(t),
    });
    let err: unknown;
    await rec.start().catch((e) => (err = e));
    expect(rec.state).toBe('idle');
    expect(voiceErrorText(err)).toBe(VOICE_TEXT.denied);
    expect(voiceErrorText({ name: 'NotFoundError' })).toBe(VOICE_TEXT.noDevice);
    expect(voiceErrorText(new Error('x'))).toBe(VOICE_TEXT.failed);
  });
});
