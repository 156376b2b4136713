/* Console enhancements. Every page works without this file; it adds:
 *  - the collapsing main menu on narrow screens (a real button with aria-expanded; Escape
 *    closes it and returns focus to the button);
 *  - confirmation before destructive or irreversible actions: a form with a
 *    data-confirm attribute asks first (the text comes translated from the server), and so
 *    does any "danger" button (suspend, terminate, revoke), with its own label;
 *  - schema browser buttons that insert a column name at the editor's cursor (the editor
 *    itself is CodeMirror 6, static/vendor/codemirror.min.js, loaded on the workbench only);
 *  - tabs between result charts.
 * Written for the CSP of the console: no eval, no inline handlers, no inline styles. */
(function () {
  "use strict";

  function enhanceMenu() {
    var button = document.getElementById("menu-toggle");
    var header = document.querySelector(".top");
    if (!button || !header) { return; }
    header.classList.add("has-menu-toggle");
    button.hidden = false;
    function set(open) {
      header.classList.toggle("menu-open", open);
      button.setAttribute("aria-expanded", open ? "true" : "false");
    }
    set(false);
    button.addEventListener("click", function () { set(button.getAttribute("aria-expanded") !== "true"); });
    document.addEventListener("keydown", function (ev) {
      if (ev.key === "Escape" && header.classList.contains("menu-open")) { set(false); button.focus(); }
    });
  }

  function enhanceConfirm() {
    // A form's data-confirm text (translated by the server), or, for any "danger" button
    // (suspend, terminate, revoke …), the button's own label as the question.
    var zh = (document.documentElement.lang || "").indexOf("zh") === 0;
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      var button = ev.submitter;
      var text = form && form.getAttribute && form.getAttribute("data-confirm");
      if (!text && button && button.classList && button.classList.contains("danger")) {
        text = button.textContent.trim() + (zh ? "？" : "?");
      }
      if (text && !window.confirm(text)) { ev.preventDefault(); ev.stopImmediatePropagation(); }
    }, true);
  }

  function enhanceInserts() {
    var editor = document.querySelector("[data-editor]");
    if (!editor || !editor.editorInsert) { return; }
    document.querySelectorAll(".insert-wrap").forEach(function (w) { w.hidden = false; });
    document.addEventListener("click", function (ev) {
      var btn = ev.target.closest ? ev.target.closest("button[data-insert]") : null;
      if (btn) { editor.editorInsert(btn.getAttribute("data-insert")); }
    });
  }

  function enhanceTabs(root) {
    var list = root.querySelector("[role=tablist]");
    if (!list) { return; }
    var tabs = Array.prototype.slice.call(list.querySelectorAll("[role=tab]"));
    function select(tab, focus) {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        var panel = document.getElementById(t.getAttribute("aria-controls"));
        if (panel) { panel.hidden = !on; }
      });
      if (focus) { tab.focus(); }
    }
    list.hidden = false;
    tabs.forEach(function (t, i) {
      t.addEventListener("click", function () { select(t, false); });
      t.addEventListener("keydown", function (ev) {
        if (ev.key === "ArrowRight" || ev.key === "ArrowLeft") {
          ev.preventDefault();
          select(tabs[(i + (ev.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length], true);
        }
      });
    });
    select(tabs[0], false);
  }

  function start() {
    enhanceMenu();
    enhanceConfirm();
    enhanceInserts();
    document.querySelectorAll("[data-chart-tabs]").forEach(enhanceTabs);
  }
  // console.js runs before the deferred editor bundle: start once everything has loaded
  // so the insert buttons find the mounted editor.
  if (document.readyState === "complete") { start(); } else { window.addEventListener("load", start); }
})();
