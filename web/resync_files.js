// ReSync: URLs of the host's files and a download that keeps the page where it is.
// Helpers only (no side effects): imported by resync_batch.js and resync_upload.js.
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";

/** The host's /view URL of a file it reported ({filename, subfolder, type}). */
export function resyncViewUrl(file) {
  const query = new URLSearchParams({
    filename: file.filename,
    subfolder: file.subfolder ?? "",
    type: file.type ?? "output",
  });
  return api.apiURL(`/view?${query}`);
}

/** Save `url` as `filename` through the browser's download (same origin, so `download` applies). */
export function resyncDownload(url, filename) {
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.style.display = "none";
  document.body.append(link);
  link.click();
  link.remove();
}

/** A short message in the host's toast area (silently nothing on hosts without one). */
export function resyncToast(severity, detail) {
  app.extensionManager?.toast?.add({ severity, summary: "ReSync", detail, life: 5000 });
}
