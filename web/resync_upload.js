// ReSync: upload many videos or voices at once into a fresh folder of the input folder, and point
// the batch node's `videos` / `audios` field at it. The host's upload buttons take one file for
// one combo; a batch needs a folder of them. Uses the host's own upload route (/upload/image,
// which stores any file type).
import { api } from "../../scripts/api.js";
import { resyncToast } from "./resync_files.js";

const RESYNC_UPLOAD_ROOT = "resync_batch";

/** Adds "Upload videos…" and "Upload audios…" buttons to a batch node. */
export function resyncAddUploadButtons(node) {
  for (const [field, accept, label] of [
    ["videos", "video/*,.mkv,.mov,.webm", "Upload videos…"],
    ["audios", "audio/*,.flac,.opus,.m4a", "Upload audios…"],
  ]) {
    const widget = node.addWidget("button", label, null, () => resyncPickFiles(node, field, accept), {
      serialize: false,
    });
    widget.serialize = false;
  }
}

function resyncPickFiles(node, field, accept) {
  const input = document.createElement("input");
  input.type = "file";
  input.multiple = true;
  input.accept = accept;
  input.style.display = "none";
  input.addEventListener("cancel", () => input.remove());
  input.addEventListener("change", async () => {
    input.remove();
    try {
      await resyncUploadFiles(node, field, [...input.files]);
    } catch (error) {
      resyncToast("error", String(error.message ?? error));
    }
  });
  document.body.append(input);
  input.click();
}

function resyncFolderName(field) {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `${RESYNC_UPLOAD_ROOT}/${field}-${stamp}`;
}

/** Uploads `files` into input/resync_batch/<field>-<time>/ and sets the node's `field` to it. */
export async function resyncUploadFiles(node, field, files) {
  if (!files.length) return null;
  const subfolder = resyncFolderName(field);
  for (const file of files) {
    const body = new FormData();
    body.append("image", file, file.name);
    body.append("type", "input");
    body.append("subfolder", subfolder);
    body.append("overwrite", "true");
    const response = await api.fetchApi("/upload/image", { method: "POST", body });
    if (response.status !== 200) {
      throw new Error(`Uploading ${file.name} failed: ${response.status} ${response.statusText}`);
    }
  }
  const widget = node.widgets?.find((w) => w.name === field);
  if (widget) {
    widget.value = `${subfolder}/`;
    widget.callback?.(widget.value);
  }
  node.setDirtyCanvas?.(true, true);
  resyncToast("success", `${files.length} file(s) uploaded to input/${subfolder}/`);
  return subfolder;
}
