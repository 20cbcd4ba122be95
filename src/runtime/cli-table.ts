import stringWidth from "string-width"

// Columns padded to their widest cell by display width (a combining accent takes no column, a
// CJK character two), so that names in any script line up; the last column is not padded, so
// no line has trailing blanks.
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(stringWidth(h), ...rows.map((r) => stringWidth(r[i] ?? ""))))
  const line = (cells: ReadonlyArray<string>) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + " ".repeat(Math.max(0, (widths[i] ?? 0) - stringWidth(c)))))
      .join("  ")
      .trimEnd()
  return [line(header), ...rows.map(line)].join("\n")
}
