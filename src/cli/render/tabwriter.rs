//! Go's `text/tabwriter`, as the Docker CLI and Docker Compose configure it (spaces, no flags):
//! the one column aligner behind every table berth prints. Docker's tables are this writer fed
//! with tab-separated lines, so matching its rules (column blocks, the unaligned last cell,
//! minimum width, padding) is what makes berth's tables read exactly like Docker's, including
//! cells that hold newlines (a heredoc in `image history`).

/// The writer settings each Docker command uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// The least width of a column, padding included.
    pub minwidth: usize,
    /// Spaces added to the widest cell of a column.
    pub padding: usize,
}

impl Style {
    /// The Docker CLI's table formatter (`tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`): `ps`,
    /// `stats`, `images`, `network ls`, `volume ls`, `history`...
    pub const DOCKER: Style = Style { minwidth: 10, padding: 3 };
    /// Docker Compose's own tables (`ls`, `images`): columns at least 20 wide.
    pub const COMPOSE: Style = Style { minwidth: 20, padding: 3 };
    /// Docker Compose's `top`.
    pub const COMPOSE_TOP: Style = Style { minwidth: 4, padding: 2 };
}

/// Aligns `text` (lines of tab-terminated cells) as Go's tabwriter does: a cell's column block is
/// the run of adjacent lines that have a tab-terminated cell in that column, padded to the widest
/// such cell plus `padding`, at least `minwidth`; a line's last (unterminated) cell is not
/// aligned and never padded. Widths count characters.
pub fn align(text: &str, style: Style) -> String {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::with_capacity(text.len() * 2);
    let mut widths = Vec::new();
    format_block(&lines, 0, lines.len(), &mut widths, style, &mut out);
    if text.ends_with('\n') {
        // (`write_lines` put a newline after each line but the last.)
        out.push('\n');
    }
    out
}

/// Aligns rows of cells: each row is one line, its cells joined by tabs, so that the last cell
/// of every row is the unaligned one.
pub fn table(rows: &[Vec<String>], style: Style) -> String {
    let mut text = String::new();
    for r in rows {
        text.push_str(&r.join("\t"));
        text.push('\n');
    }
    align(&text, style)
}

/// Lays out lines `line0..line1` for column `widths.len()` onwards (Go's `format`): each block
/// of lines that have a cell in this column gets its width, then its own sub-columns.
fn format_block(lines: &[Vec<&str>], mut line0: usize, line1: usize, widths: &mut Vec<usize>, style: Style, out: &mut String) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = style.minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + style.padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, style, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], line0: usize, line1: usize, widths: &[usize], out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if let Some(w) = widths.get(j) {
                out.extend(std::iter::repeat_n(' ', w.saturating_sub(cell.chars().count())));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(r: &[&[&str]]) -> Vec<Vec<String>> {
        r.iter().map(|r| r.iter().map(|c| c.to_string()).collect()).collect()
    }

    #[test]
    fn columns_pad_like_go() {
        let t = rows(&[&["NAME", "IMAGE", "PORTS"], &["qprobe-worker-1", "busybox", ""]]);
        assert_eq!(table(&t, Style::DOCKER), "NAME              IMAGE     PORTS\nqprobe-worker-1   busybox   \n");
        assert_eq!(table(&rows(&[&["NAME", "IMAGE", "COMMAND"]]), Style::DOCKER), "NAME      IMAGE     COMMAND\n");
        let t = rows(&[&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &["c833b26dab18", "bridge", "bridge", "local"]]);
        assert_eq!(table(&t, Style::DOCKER), "NETWORK ID     NAME      DRIVER    SCOPE\nc833b26dab18   bridge    bridge    local\n");
        // Compose's tables: at least 20 wide.
        assert_eq!(
            table(&rows(&[&["NAME", "STATUS"], &["p", "running(1)"]]), Style::COMPOSE),
            "NAME                STATUS\np                   running(1)\n"
        );
        // Widths count characters, not bytes.
        assert_eq!(table(&rows(&[&["é", "x"], &["ab", "y"]]), Style { minwidth: 0, padding: 1 }), "é  x\nab y\n");
    }

    #[test]
    fn multi_line_cells_lay_out_as_docker_history_does() {
        // Captured from `docker history` (Docker 20.10) on an image with heredoc RUN steps.
        let t = rows(&[
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &["69510a532e42", "15 seconds ago", "RUN /bin/sh -c <<EOF sh\nset -e\necho 3\nEOF\n", "0B", "berth.dockerfile.v0"],
            &["<missing>", "18 seconds ago", "RUN /bin/sh -c echo one\necho two > /two\n", "4B", "berth.dockerfile.v0"],
            &["<missing>", "18 seconds ago", "RUN /bin/sh -c mkdir /x", "0B", "berth.dockerfile.v0"],
            &["<missing>", "3 hours ago", "", "1.98MB", ""],
        ]);
        let want = "IMAGE          CREATED          CREATED BY   SIZE      COMMENT\n\
                    69510a532e42   15 seconds ago   RUN /bin/sh -c <<EOF sh\n\
                    set -e\n\
                    echo 3\n\
                    EOF\n            0B               berth.dockerfile.v0\n\
                    <missing>   18 seconds ago   RUN /bin/sh -c echo one\n\
                    echo two > /two\n            4B               berth.dockerfile.v0\n\
                    <missing>   18 seconds ago   RUN /bin/sh -c mkdir /x   0B        berth.dockerfile.v0\n\
                    <missing>   3 hours ago                                1.98MB    \n";
        assert_eq!(table(&t, Style::DOCKER), want);
    }

    #[test]
    fn a_line_without_the_column_ends_its_block() {
        // Go's column blocks: the single-cell line in the middle splits the first column in two.
        assert_eq!(align("a\tb\nlonger-cell\n1234567\tc\n", Style { minwidth: 0, padding: 1 }), "a b\nlonger-cell\n1234567 c\n");
        assert_eq!(align("", Style::DOCKER), "");
    }
}
