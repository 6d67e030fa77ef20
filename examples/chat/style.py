"""The chat's look: one small stylesheet, shared by every page."""

from __future__ import annotations

CSS = """
:root { --bg:#f4f5f7; --panel:#fff; --ink:#1d2330; --muted:#6b7280; --line:#e3e6eb;
        --accent:#4f46e5; --accent-ink:#fff; --mine:#eef2ff; --ok:#16a34a; --bad:#dc2626; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       background: var(--bg); color: var(--ink); }
a { color: var(--accent); text-decoration: none; }
.shell { display:grid; grid-template-columns: 240px 1fr 200px; height: 100vh; }
.sidebar, .people { background: var(--panel); border-right: 1px solid var(--line); padding: 16px;
                    overflow-y: auto; }
.people { border-right: 0; border-left: 1px solid var(--line); }
.brand { font-weight: 700; font-size: 18px; margin-bottom: 16px; }
.me { color: var(--muted); font-size: 13px; margin-bottom: 16px; }
.rooms { list-style: none; padding: 0; margin: 0 0 16px; }
.rooms li a { display:flex; justify-content: space-between; padding: 6px 10px; border-radius: 6px;
              color: var(--ink); }
.rooms li a.current { background: var(--mine); font-weight: 600; }
.badge { background: var(--accent); color: var(--accent-ink); border-radius: 10px;
         padding: 0 7px; font-size: 12px; }
.main { display:flex; flex-direction: column; min-width: 0; }
.header { padding: 14px 20px; border-bottom: 1px solid var(--line); background: var(--panel);
          font-weight: 600; }
.messages { flex: 1; overflow-y: auto; padding: 16px 20px; display:flex; flex-direction: column;
            gap: 6px; }
.message { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
           padding: 8px 12px; max-width: 70%; }
.message.mine { align-self: flex-end; background: var(--mine); }
.message .who { font-weight: 600; font-size: 13px; }
.message .when { color: var(--muted); font-size: 11px; margin-left: 6px; }
.message { position: relative; }
.message .actions { position: absolute; top: 6px; right: 10px; font-size: 11px; opacity: 0;
  transition: opacity .15s; background: inherit; }
.message:hover .actions { opacity: 1; }
.message form.edit { display: flex; gap: 6px; margin-top: 4px; }
.message form.edit input[name=content] { flex: 1; }
.older { text-align: center; padding: 6px; font-size: 13px; }
.typing { color: var(--muted); font-style: italic; min-height: 22px; padding: 0 20px; }
.composer { display:flex; gap: 8px; padding: 12px 20px; border-top: 1px solid var(--line);
            background: var(--panel); }
.composer input { flex: 1; }
input { padding: 9px 12px; border: 1px solid var(--line); border-radius: 8px; font: inherit; }
button { padding: 9px 16px; border: 0; border-radius: 8px; background: var(--accent);
         color: var(--accent-ink); font: inherit; cursor: pointer; }
button.secondary { background: var(--line); color: var(--ink); }
.error { color: var(--bad); font-size: 13px; padding: 0 20px; }
.online { list-style: none; padding: 0; margin: 0; }
.online li::before { content: "●"; color: var(--ok); margin-right: 6px; }
.card { max-width: 360px; margin: 12vh auto; background: var(--panel); padding: 28px;
        border-radius: 14px; border: 1px solid var(--line); display:flex; flex-direction: column;
        gap: 12px; }
.card h1 { margin: 0 0 8px; font-size: 22px; }
.row { display:flex; gap: 8px; }
.row input { flex: 1; min-width: 0; }
.flash { background:#fef3c7; padding: 8px 12px; border-radius: 8px; }
.bell-row { margin-bottom: 10px; }
.dropdown { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
            padding: 8px; margin-bottom: 12px; font-size: 13px; display:flex;
            flex-direction: column; gap: 6px; }
.notification { padding: 6px 8px; border-radius: 6px; }
.notification.unread { background: var(--mine); }
button.link { background: none; color: var(--accent); padding: 0; }
.muted { color: var(--muted); margin: 4px; }
"""
