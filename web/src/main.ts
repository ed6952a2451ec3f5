import { mount } from 'svelte';
import './app.css';
import App from './components/App.svelte';
import { session } from './session-instance';
import { timeLabel } from './lib/format';

// The service worker shows Web Push notifications (public/sw.js); registered on every start.
session.registerServiceWorker();

const app = mount(App, { target: document.getElementById('app')! });

// The first date formatting loads the browser's locale data: do it now, in a task of its own
// while the session starts, rather than in the middle of drawing the chats.
setTimeout(() => timeLabel(new Date().toISOString()), 0);
export default app;
