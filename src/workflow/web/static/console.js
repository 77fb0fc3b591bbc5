// The console's small helpers; every page works without them.
"use strict";
(function () {
  // a select that submits its form when changed
  document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });
  // "select all" for a list's checkboxes, and "select those that can be certified"
  document.querySelectorAll("[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      box.form.querySelectorAll('input[name="' + box.dataset.selectAll + '"]').forEach(function (c) { c.checked = box.checked; });
    });
  });
  document.querySelectorAll("[data-select-passing]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      btn.form.querySelectorAll('input[name="case"]').forEach(function (c) { c.checked = c.hasAttribute("data-passing"); });
    });
  });
  // "back" on an error page
  document.querySelectorAll("[data-back]").forEach(function (a) {
    a.addEventListener("click", function (ev) { if (history.length > 1) { ev.preventDefault(); history.back(); } });
  });
  // a score sheet's live total: points (or occurrences × points), each checked against its cap and step
  function dec(text) { return /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN; }
  document.querySelectorAll("[data-sheet]").forEach(function (table) {
    var out = table.querySelector("[data-total]");
    function update() {
      var total = 0, bad = 0;
      table.querySelectorAll("input[data-code]").forEach(function (input) {
        var raw = input.value.trim(), ok = true, pts = 0;
        if (raw !== "") {
          var v = dec(raw), cap = Number(input.dataset.cap), step = Number(input.dataset.step) || 0.5;
          if (isNaN(v)) { ok = false; }
          else if (input.hasAttribute("data-count")) {
            ok = Number.isInteger(v); pts = Math.min(v * Number(input.dataset.points), cap);
          } else {
            ok = v <= cap && Math.abs(v / step - Math.round(v / step)) < 1e-9; pts = v;
          }
        }
        input.setAttribute("aria-invalid", ok ? "false" : "true");
        input.title = ok ? "" : "须为不超过 " + input.dataset.cap + " 分、以 " + input.dataset.step + " 分为单位的分数";
        if (ok) { total += pts; } else { bad += 1; }
      });
      if (out) {
        out.textContent = (Math.round(total * 10) / 10) + " 分" + (bad ? "（" + bad + " 处有误）" : "") +
          (total >= Number(table.dataset.pass) ? " · 合格" : " · 未达合格线 " + table.dataset.pass);
      }
    }
    table.addEventListener("input", update);
    update();
  });
})();
