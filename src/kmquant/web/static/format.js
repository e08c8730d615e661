// Numbers for people, as the command line shows them.

/** 1234567 → "1.2 MB" (binary multiples, as kmquant's reports and file managers show);
 * `short`: no decimal from 100 up ("120 KB"). */
export function humanBytes(n, short = false) {
  if (n === null || n === undefined || !Number.isFinite(n)) return "—";
  let value = n;
  for (const unit of ["B", "KB", "MB", "GB"]) {
    if (Math.abs(value) < 1024 || unit === "GB") {
      if (unit === "B") return `${Math.round(value)} B`;
      return `${value.toFixed(short && Math.abs(value) >= 100 ? 0 : 1)} ${unit}`;
    }
    value /= 1024;
  }
  return `${n} B`;
}

/** PSNR in dB, "lossless" when the output equals the input. */
export function formatPsnr(psnr, lossless) {
  if (psnr === null || psnr === undefined || !Number.isFinite(psnr)) return lossless ? "lossless" : "n/a";
  return `${psnr.toFixed(2)} dB`;
}

/** Original / compressed → "12.3× smaller" or "1.2× larger". */
export function formatRatio(ratio) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio) || ratio <= 0) return "—";
  return ratio >= 1 ? `${ratio.toFixed(ratio >= 10 ? 1 : 2)}× smaller` : `${(1 / ratio).toFixed(2)}× larger`;
}

/** Seconds → "0.42 s" or "340 ms". */
export function formatSeconds(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

/** 1234567 → "1 234 567" (thin spaces between thousands). */
export function groupDigits(n) {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, "\u202f");
}
