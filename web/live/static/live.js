// Connects every LiveView on the page: the official phoenix and phoenix_live_view clients,
// served by the endpoint from the npm packages installed at set-up.
import { Socket } from "/assets/phoenix/phoenix.mjs";
import { LiveSocket } from "/assets/phoenix_live_view/phoenix_live_view.esm.js";

const csrfToken = document.querySelector("meta[name='csrf-token']").getAttribute("content");
const liveSocket = new LiveSocket("/live", Socket, { params: { _csrf_token: csrfToken } });
liveSocket.connect();
window.liveSocket = liveSocket;
