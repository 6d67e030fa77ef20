"""The chat's look: one small stylesheet, shared by every page."""

from __future__ import annotations

CSS = """
:root { --bg:#f4f5f7; --panel:#fff; --ink:#1d2330; --muted:#6b7280; --line:#e3e6eb;
        --accent:#4f46e5; --accent-ink:#fff; --mine:#eef2ff; --ok:#16a34a; --bad:#dc2626; }
* { box-sizing: border-box; }
body { margin:0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       background: var(--bg); color: var(--ink); }
a { color: var(--accent); text-decoration: none; }
/* The page is the window: only the message pane (and the side lists) scroll. */
.shell { display:grid; grid-template-columns: 240px minmax(0, 1fr) 200px;
         grid-template-rows: minmax(0, 1fr); height: 100vh; height: 100dvh; overflow: hidden; }
.sidebar, .people { background: var(--panel); border-right: 1px solid var(--line); padding: 16px;
                    overflow-y: auto; min-height: 0; }
.people { border-right: 0; border-left: 1px solid var(--line); }
.brand { font-weight: 700; font-size: 18px; margin-bottom: 16px; }
.me { color: var(--muted); font-size: 13px; margin-bottom: 16px; }
.rooms { list-style: none; padding: 0; margin: 0 0 16px; }
.rooms li a { display:flex; justify-content: space-between; padding: 6px 10px; border-radius: 6px;
              color: var(--ink); overflow-wrap: anywhere; }
.rooms li a.current { background: var(--mine); font-weight: 600; }
.badge { background: var(--accent); color: var(--accent-ink); border-radius: 10px;
         padding: 0 7px; font-size: 12px; }
.main { display:flex; flex-direction: column; min-width: 0; min-height: 0; overflow: hidden;
        position: relative; }
.header { padding: 14px 20px; border-bottom: 1px solid var(--line); background: var(--panel);
          font-weight: 600; display: flex; align-items: center; gap: 10px; flex: none; }
.header #room-name { flex: 1; min-width: 0; overflow: hidden; text-overflow: ellipsis;
                     white-space: nowrap; }
.header .icon { display: none; padding: 4px 10px; background: var(--line); color: var(--ink);
                font-size: 14px; }
.messages { flex: 1 1 0; min-height: 0; overflow-y: auto; padding: 16px 20px;
            overscroll-behavior: contain; }
.stream { display:flex; flex-direction: column; gap: 6px; }
.item { display: flex; flex-direction: column; align-items: flex-start; flex: none; }
.item.mine { align-items: flex-end; }
.item[data-day]::before { content: attr(data-day); align-self: stretch; text-align: center;
  color: var(--muted); font-size: 12px; margin: 10px 0 4px; border-top: 1px solid var(--line);
  padding-top: 6px; }
.message { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
           padding: 8px 12px; max-width: min(70%, 640px); min-width: 0; position: relative; }
.message.mine { background: var(--mine); }
.message.to-me { border-color: #f59e0b; }
.item.shown .message { box-shadow: 0 0 0 3px #fbbf24; transition: box-shadow .3s; }
.message .who { font-weight: 600; font-size: 13px; }
.message .when { color: var(--muted); font-size: 11px; margin-left: 6px; }
.message .body { white-space: pre-wrap; overflow-wrap: anywhere; }
.mention { background: #e0e7ff; border-radius: 4px; padding: 0 2px; }
.mention.me { background: #fde68a; font-weight: 600; }
.message .actions { position: absolute; top: 6px; right: 10px; font-size: 11px; opacity: 0;
  transition: opacity .15s; background: inherit; }
.message:hover .actions, .message:focus-within .actions { opacity: 1; }
.message form.edit { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 4px;
                     align-items: flex-start; }
.message form.edit .field { flex: 1 1 100%; min-width: min(280px, 70vw); }
.message form.edit .form-error { flex-basis: 100%; }
.files { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; align-items: flex-start; }
.files .picture img { display: block; max-width: 100%; height: auto; border-radius: 8px;
                      border: 1px solid var(--line); background: var(--bg); }
.files .file { display: inline-flex; gap: 6px; align-items: baseline; padding: 6px 10px;
               border: 1px solid var(--line); border-radius: 8px; background: var(--bg);
               font-size: 13px; overflow-wrap: anywhere; color: var(--ink); }
.files .file .size { color: var(--muted); }
.new-marker { position: absolute; left: 50%; transform: translateX(-50%); bottom: 110px;
              box-shadow: 0 2px 8px rgba(0,0,0,.2); border-radius: 16px; padding: 6px 14px;
              z-index: 2; }
.new-marker[hidden] { display: none; }
.banner { display: none; position: fixed; top: 0; left: 0; right: 0; z-index: 20;
          background: #fef3c7; color: #92400e; text-align: center; padding: 6px;
          font-size: 14px; line-height: 20px; height: 32px; box-sizing: border-box; }
body.offline .banner { display: block; }
/* The banner takes its own line: the page moves down under it instead of being covered. */
body.offline .shell { margin-top: 32px; height: calc(100vh - 32px); height: calc(100dvh - 32px); }
body.offline .composer { opacity: .6; }
.join { padding: 16px 20px; border-top: 1px solid var(--line); background: var(--panel);
        display: flex; gap: 12px; align-items: center; flex: none; }
.scrim { display: none; }
.older { text-align: center; padding: 6px; font-size: 13px; }
.typing { color: var(--muted); font-style: italic; min-height: 22px; padding: 0 20px;
          flex: none; }
.composer { display:flex; gap: 8px; padding: 12px 20px; border-top: 1px solid var(--line);
            background: var(--panel); align-items: flex-end; position: relative; flex: none; }
.composer { flex-wrap: wrap; }
.composer textarea { flex: 1; min-width: 0; resize: none; max-height: 160px; }
.composer.phx-drop-target-active { outline: 2px dashed var(--accent); outline-offset: -6px; }
.uploads { flex-basis: 100%; list-style: none; margin: 0; padding: 0; display: flex;
           flex-wrap: wrap; gap: 6px; }
.upload { display: flex; align-items: center; gap: 8px; background: var(--bg); font-size: 13px;
          border: 1px solid var(--line); border-radius: 8px; padding: 4px 8px; max-width: 100%; }
.upload .name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 220px; }
.upload progress { width: 90px; accent-color: var(--accent); }
.upload.refused { border-color: var(--bad); }
.upload .cancel { font-size: 18px; line-height: 1; color: var(--muted); }
.upload-error { color: var(--bad); font-size: 12px; }
.upload-hint { color: var(--muted); font-size: 12px; align-self: center; }
.attach { align-self: center; cursor: pointer; color: var(--muted); padding: 8px;
          border-radius: 8px; line-height: 0; }
.attach:hover { background: var(--bg); }
.picker { position: absolute; width: 1px; height: 1px; opacity: 0; overflow: hidden;
          pointer-events: none; }
.counter { color: var(--muted); font-size: 12px; align-self: center; }
.counter.over { color: var(--bad); font-weight: 600; }
.mentions { position: absolute; bottom: 100%; left: 20px; list-style: none; margin: 0;
            padding: 4px; background: var(--panel); border: 1px solid var(--line);
            border-radius: 8px; box-shadow: 0 2px 8px rgba(0,0,0,.15); }
.mentions li { padding: 4px 10px; cursor: pointer; border-radius: 6px; }
.mentions li:first-child { background: var(--mine); }
.mentions[hidden] { display: none; }
input, textarea { padding: 9px 12px; border: 1px solid var(--line); border-radius: 8px;
                  font: inherit; }
button { padding: 9px 16px; border: 0; border-radius: 8px; background: var(--accent);
         color: var(--accent-ink); font: inherit; cursor: pointer; }
button.secondary { background: var(--line); color: var(--ink); }
.error { color: var(--bad); font-size: 13px; padding: 0 20px; flex: none; }
.error.field { padding: 4px 0 0; }
/* Forms bound to domain actions (form_input): a label, the input, its errors under it. */
.field { display: flex; flex-direction: column; gap: 4px; min-width: 0; }
.field label { font-size: 13px; color: var(--muted); }
.field-error, .form-error { color: var(--bad); font-size: 13px; margin: 0; }
.new-room { align-items: flex-start; flex-wrap: wrap; margin-bottom: 8px; }
.new-room .field { flex: 1; }
.new-room .form-error { flex-basis: 100%; }
.new-room .field label, .message form.edit .field label { position: absolute; width: 1px;
  height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
input[aria-invalid=true] { border-color: var(--bad); }
.online { list-style: none; padding: 0; margin: 0; }
.online li::before { content: "●"; color: var(--ok); margin-right: 6px; }
.card { max-width: 360px; margin: 12vh auto; background: var(--panel); padding: 28px;
        border-radius: 14px; border: 1px solid var(--line); display:flex; flex-direction: column;
        gap: 12px; }
.card h1 { margin: 0 0 8px; font-size: 22px; }
.card p.error { margin: -6px 0 0; padding: 0; }
.card p.muted { margin: 0; font-size: 13px; }
.row { display:flex; gap: 8px; }
.row input { flex: 1; min-width: 0; }
.flash { background:#fef3c7; padding: 8px 12px; border-radius: 8px; cursor: pointer;
         flex: none; }
.main .flash { margin: 8px 20px 0; }
.flash.error { background: #fee2e2; color: #991b1b; }
.bell-row { margin-bottom: 10px; }
.dropdown { background: var(--panel); border: 1px solid var(--line); border-radius: 10px;
            padding: 8px; margin-bottom: 12px; font-size: 13px; display:flex;
            flex-direction: column; gap: 6px; }
.notification { padding: 6px 8px; border-radius: 6px; color: var(--ink); display: block; }
.notification time { color: var(--muted); font-size: 12px; }
.notification.unread { background: var(--mine); }
button.link { background: none; color: var(--accent); padding: 0; }
.muted { color: var(--muted); margin: 4px; }
/* Phones: the conversation takes the whole width; rooms and people are drawers. */
@media (max-width: 700px) {
  .shell { grid-template-columns: minmax(0, 1fr); }
  .header .icon { display: inline-block; }
  .sidebar, .people { position: fixed; top: 0; bottom: 0; width: min(80vw, 300px); z-index: 10;
                      transition: transform .2s; box-shadow: 0 0 16px rgba(0,0,0,.2); }
  .sidebar { left: 0; transform: translateX(-105%); }
  .people { right: 0; transform: translateX(105%); }
  body.drawer-rooms .sidebar, body.drawer-people .people { transform: none; }
  body.drawer-rooms .scrim, body.drawer-people .scrim { display: block; position: fixed;
    inset: 0; background: rgba(0,0,0,.3); z-index: 5; }
  .messages { padding: 12px; }
  .message { max-width: 85%; }
  .composer { padding: 8px 12px; }
  .new-marker { bottom: 90px; }
}
"""
