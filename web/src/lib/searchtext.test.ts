import { describe, expect, it } from 'vitest';
import { foldText, highlight, matches, mergeResults, queryWords, snippet, validQuery } from './searchtext';
import { msg } from './testutil';

describe('search text', () => {
  it('folds like the server (NFKD, marks dropped, lower case)', () => {
    expect(foldText('Café ÉTÉ ﬁne')).toBe('cafe ete fine');
    expect(queryWords('  Dinner, FRIDAY dinner ')).toEqual(['dinner', 'friday']);
    expect(queryWords('東京')).toEqual(['東', '京']);
    expect(validQuery('   ')).toBe(false);
    expect(validQuery('?!')).toBe(false);
    expect(validQuery('x'.repeat(201))).toBe(false);
    expect(validQuery('meet')).toBe(true);
  });
  it('matches word starts only, all words', () => {
    expect(matches('Dinner on Friday?', queryWords('dinner friday'))).toBe(true);
    expect(matches("Let's meet at the meeting", queryWords('meet'))).toBe(true);
    expect(matches('a summit', queryWords('mmit'))).toBe(false);
    expect(matches('Dinner on Monday', queryWords('dinner friday'))).toBe(false);
  });
  it('highlights the matching prefix in the original text', () => {
    expect(highlight('Café at the cafeteria', queryWords('cafe'))).toEqual([
      { text: 'Café', hit: true },
      { text: ' at the ', hit: false },
      { text: 'cafe', hit: true },
      { text: 'teria', hit: false },
    ]);
    expect(highlight('ÉTÉ', ['et'])).toEqual([{ text: 'ÉT', hit: true }, { text: 'É', hit: false }]);
    expect(highlight('no match', ['xyz'])).toEqual([{ text: 'no match', hit: false }]);
  });
  it('cuts long text around the first match', () => {
    const long = `${'word '.repeat(60)}needle here ${'tail '.repeat(40)}`;
    const s = snippet(long, ['needle'], 80);
    expect(s.startsWith('…')).toBe(true);
    expect(s.endsWith('…')).toBe(true);
    expect(s).toContain('needle');
    expect(snippet('short text', ['x'])).toBe('short text');
  });
  it('merges pages without duplicates', () => {
    const a = [msg({ seq: 5 }), msg({ seq: 4 })];
    expect(mergeResults(a, [msg({ seq: 4 }), msg({ seq: 3 }), msg({ seq: 1, conversation_id: 'c2' })]).map((m) => `${m.conversation_id}:${m.seq}`)).toEqual(['c1:5', 'c1:4', 'c1:3', 'c2:1']);
  });
});
