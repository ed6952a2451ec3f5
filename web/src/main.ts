import { mount } from 'svelte';
import './app.css';
import App from './components/App.svelte';
import { session } from './session-instance';

// The service worker shows Web Push notifications (public/sw.js); registered on every start.
session.registerServiceWorker();

const app = mount(App, { target: document.getElementById('app')! });
export default app;
