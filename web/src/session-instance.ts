import { Session } from './lib/session';

/** The one session of this page. */
export const session = new Session();
