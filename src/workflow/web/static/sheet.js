// The self-assessment sheet page: warn before unsaved scores are lost (leaving the page, or an
// upload, which reloads it), and drop files on a criterion's evidence cell (or a required
// document's row) to upload them. Every form works without this.
"use strict";
(function () {
  var sheet = document.getElementById("sheet-form");
  var dirty = false;
  if (sheet) {
    // (a criterion's file input sits in the sheet's table but belongs to its upload form)
    sheet.addEventListener("input", function (ev) { if (ev.target.form === sheet) { dirty = true; } });
    sheet.addEventListener("submit", function () { dirty = false; });
    window.addEventListener("beforeunload", function (ev) {
      if (dirty) { ev.preventDefault(); ev.returnValue = ""; }
    });
  }
  // an upload reloads the page: scores typed but not saved would be lost
  document.querySelectorAll('form[enctype="multipart/form-data"]').forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (dirty && !window.confirm("自评表有未保存的分数，上传文件会刷新本页，未保存的分数将丢失。\n" +
                                   "点“取消”返回先保存自评表；点“确定”继续上传。")) {
        ev.preventDefault();
        return;
      }
      dirty = false;
    });
  });
  // drag and drop: the dropped files go into the cell's file input, and its form is sent
  document.querySelectorAll("[data-drop]").forEach(function (zone) {
    var input = zone.querySelector('input[type="file"]');
    if (!input || !input.form) { return; }
    zone.addEventListener("dragover", function (ev) {
      if (ev.dataTransfer && Array.prototype.indexOf.call(ev.dataTransfer.types, "Files") >= 0) {
        ev.preventDefault();
        zone.classList.add("dragging");
      }
    });
    zone.addEventListener("dragleave", function () { zone.classList.remove("dragging"); });
    zone.addEventListener("drop", function (ev) {
      zone.classList.remove("dragging");
      if (!ev.dataTransfer || !ev.dataTransfer.files.length) { return; }
      ev.preventDefault();
      try { input.files = ev.dataTransfer.files; } catch (e) { return; }
      if (input.form.requestSubmit) { input.form.requestSubmit(); } else { input.form.submit(); }
    });
  });
})();
