// Amounts are integer fen in the API; staff read and type yuan. Parsing is textual, never float arithmetic.

export function yuan(fen) {
  if (fen === null || fen === undefined) return "—";
  const negative = fen < 0;
  const abs = Math.abs(fen);
  const text = `${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
  return `${negative ? "-" : ""}¥${text}`;
}

export function fenToYuanText(fen) {
  if (fen === null || fen === undefined || fen === "") return "";
  const abs = Math.abs(fen);
  return `${fen < 0 ? "-" : ""}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

// "12", "12.3", "12.30" -> 1230; anything else -> null (the form says so before sending).
export function yuanToFen(text) {
  const value = String(text ?? "").trim();
  const match = value.match(/^(\d{1,9})(?:\.(\d{1,2}))?$/);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
}
