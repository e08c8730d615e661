// The HTTP API of `kmquant serve`, as the page uses it: upload (with progress), form posts,
// JSON errors, progress polling by ticket.

/** An error answer of the server (or of the network): `message` is one line for people. */
export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {number} status HTTP status (0: no answer)
   * @param {string} code the server's error class name
   * @param {number|null} retryAfter seconds, from the Retry-After header
   */
  constructor(message, status = 0, code = "Error", retryAfter = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }

  /** Busy or too slow: worth trying again after `retryAfter` seconds. */
  get retryable() {
    return this.status === 429 || this.status === 503;
  }

  /** The server no longer holds the upload: upload it again. */
  get unknownImage() {
    return this.status === 404 && this.code === "UnknownImageError";
  }
}

const NO_ANSWER = "the server does not answer; check that kmquant serve is still running, then try again";

/** A random ticket for progress (hex; crypto.getRandomValues works on plain http too). */
export function newTicket() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Seconds from a Retry-After header value (null if absent or a date we do not parse). */
function retrySeconds(value) {
  if (value == null || value === "") return null;
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : null;
}

/** The ApiError of an answer's JSON body `{"error", "code"}` (or of its status). */
function errorFrom(status, text, retryAfter) {
  let message = `the server answered HTTP ${status}`;
  let code = "HTTPError";
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "string") message = body.error;
    if (body && typeof body.code === "string") code = body.code;
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(message, status, code, retrySeconds(retryAfter));
}

/**
 * Upload an image (multipart field `file`) to POST /api/images with XMLHttpRequest, so that
 * the upload's progress shows.
 *
 * @param {Blob} file
 * @param {string} name file name sent with it
 * @param {(loaded: number, total: number) => void} onProgress
 * @returns {Promise<{id: string, name: string, bytes: number, width: number, height: number,
 *   colors: number, format: string, frames: number}>}
 */
export function uploadImage(file, name, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/images");
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError("the server's answer to the upload is not JSON", xhr.status));
        }
      } else {
        reject(errorFrom(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
      }
    });
    xhr.addEventListener("error", () => reject(new ApiError(NO_ANSWER, 0, "NetworkError")));
    xhr.addEventListener("abort", () => reject(new ApiError("the upload was cancelled", 0, "AbortError")));
    const form = new FormData();
    form.append("file", file, name);
    xhr.send(form);
  });
}

/**
 * POST a multipart form; the answer when it is a success, else throws an ApiError.
 *
 * @param {string} path
 * @param {Record<string, string|number|null|undefined>} fields (null/undefined/"" left out)
 * @returns {Promise<Response>}
 */
export async function postForm(path, fields) {
  const form = new FormData();
  for (const [key, value] of Object.entries(fields)) {
    if (value !== null && value !== undefined && value !== "") form.append(key, String(value));
  }
  let response;
  try {
    response = await fetch(path, { method: "POST", body: form });
  } catch {
    throw new ApiError(NO_ANSWER, 0, "NetworkError");
  }
  if (!response.ok) {
    throw errorFrom(response.status, await response.text(), response.headers.get("Retry-After"));
  }
  return response;
}

/** GET JSON (null on any failure). */
export async function getJson(path) {
  try {
    const response = await fetch(path, { cache: "no-store" });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

/**
 * Poll GET /api/progress/<ticket> every `interval` ms (one request at a time) until stopped.
 *
 * @param {string} ticket
 * @param {(p: {stage: string, done: number, total: number}) => void} onProgress
 * @param {number} interval
 * @returns {() => void} stop
 */
export function watchProgress(ticket, onProgress, interval = 250) {
  let stopped = false;
  let timer = 0;
  const tick = async () => {
    const progress = await getJson(`/api/progress/${encodeURIComponent(ticket)}`);
    if (stopped) return;
    if (progress && typeof progress.stage === "string") onProgress(progress);
    timer = setTimeout(tick, interval);
  };
  timer = setTimeout(tick, Math.min(interval, 150));
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** The file name of a Content-Disposition header (null if none). */
export function dispositionName(header) {
  if (!header) return null;
  const star = /filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim().replace(/^"|"$/g, ""));
    } catch {
      /* fall through to the plain name */
    }
  }
  const plain = /filename\s*=\s*"([^"]*)"|filename\s*=\s*([^;]+)/i.exec(header);
  return plain ? (plain[1] ?? plain[2]).trim() : null;
}

/** Resolve after `ms` milliseconds. */
export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
