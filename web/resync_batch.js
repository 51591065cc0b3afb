// ReSync: the browser side of the Lip-Sync Batch node.
// The host already previews the output videos in the node (the node's UI output lists them as
// animated "images", like the host's own SaveVideo) and shows the "item 3/10: …" progress text.
// This adds what it cannot do: a "Download all (zip)" button for the batch's zip, and uploads of
// many files into a batch folder (resync_upload.js).
import { app } from "../../scripts/app.js";
import { resyncDownload, resyncToast, resyncViewUrl } from "./resync_files.js";
import { resyncAddUploadButtons } from "./resync_upload.js";

const RESYNC_BATCH_NODE = "ReSyncLipSyncBatch";
const RESYNC_UI_KEY = "resync_batch"; // nodes/batch.py UI_KEY
export const RESYNC_DOWNLOAD_BUTTON = "Download all (zip)";

function resyncAddDownloadButton(node) {
  const widget = node.addWidget("button", RESYNC_DOWNLOAD_BUTTON, null, () => resyncDownloadAll(node), {
    serialize: false,
  });
  widget.serialize = false;
  return widget;
}

function resyncDownloadAll(node) {
  const batch = node.resyncBatch;
  if (!batch?.zip) {
    const why = batch ? "this run wrote no zip (make_zip is off)" : "run the batch first";
    resyncToast("info", `Nothing to download yet: ${why}.`);
    return;
  }
  resyncDownload(resyncViewUrl(batch.zip), batch.zip.filename);
}

function resyncShowResult(node, batch) {
  node.resyncBatch = batch;
  const ready = batch.outputs?.length ?? 0;
  node.resyncDownloadWidget.label = batch.zip ? `${RESYNC_DOWNLOAD_BUTTON}: ${ready} video(s)` : RESYNC_DOWNLOAD_BUTTON;
  if (batch.counts?.failed) resyncToast("warn", batch.summary);
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "ReSync.Batch",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== RESYNC_BATCH_NODE) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      resyncAddUploadButtons(this);
      this.resyncDownloadWidget = resyncAddDownloadButton(this);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const batch = message?.[RESYNC_UI_KEY]?.[0];
      if (batch) resyncShowResult(this, batch);
    };
  },
});
