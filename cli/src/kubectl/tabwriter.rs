//! Go's `text/tabwriter` as kubectl's `describe` configures it (minwidth 0, padding 2, spaces):
//! a cell is text ended by a tab; consecutive lines with a cell in a column form a block whose
//! cells are padded to the widest plus 2. A line without tabs ends every block.

/// Aligns `text` (lines ending in `\n`, cells ending in `\t`).
pub fn align(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text
        .split_inclusive('\n')
        .map(|l| l.strip_suffix('\n').unwrap_or(l).split('\t').collect())
        .collect();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut widths = Vec::new();
    format(&lines, 0, lines.len(), &mut widths, &mut out);
    // `split_inclusive` dropped nothing, but a text not ending in `\n` must not gain one.
    if !text.ends_with('\n') && out.ends_with('\n') {
        out.pop();
    }
    out
}

const PADDING: usize = 2;

fn cells(line: &[&str]) -> usize {
    // The last piece is not ended by a tab, so it is not a cell of any column.
    line.len().saturating_sub(1)
}

fn format(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column >= cells(&lines[this]) {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = 0;
        while this < line1 && column < cells(&lines[this]) {
            width = width.max(lines[this][column].chars().count() + PADDING);
            this += 1;
        }
        widths.push(width);
        format(lines, line0, this, widths, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() && j < cells(line) {
                let pad = widths[j].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_blocks_like_go() {
        let text =
            "Name:\tweb\nNamespace:\tdefault\nIPs:\n  IP:\t10.0.0.1\nQoS Class:\tBestEffort\n";
        assert_eq!(
            align(text),
            "Name:       web\nNamespace:  default\nIPs:\n  IP:       10.0.0.1\nQoS Class:  BestEffort\n"
        );
    }

    #[test]
    fn nested_columns_and_empty_cells() {
        let text = "  Type\tReason\tAge\n  ----\t------\t---\n  Normal\tPulled\t5s\nLabels:\tapp=web\n\ttier=fe\n";
        assert_eq!(
            align(text),
            "  Type    Reason  Age\n  ----    ------  ---\n  Normal  Pulled  5s\nLabels:   app=web\n          tier=fe\n"
        );
    }
}
