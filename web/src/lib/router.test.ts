import { expect, it } from 'vitest';
import { parseRoute } from './router';

it('parses routes', () => {
  expect(parseRoute('/')).toEqual({ name: 'home' });
  expect(parseRoute('/c/abc')).toEqual({ name: 'chat', id: 'abc' });
  expect(parseRoute('/invite/XYZ')).toEqual({ name: 'invite', code: 'XYZ' });
  expect(parseRoute('/people')).toEqual({ name: 'people' });
  expect(parseRoute('/nope/x')).toEqual({ name: 'home' });
});
