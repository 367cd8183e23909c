//! `--format` for listings, as the Docker CLI's formatter reads it: `table` (the command's own
//! columns), `table TEMPLATE` (a header line, then a line per row, aligned by the tab writer),
//! `json` (one JSON object a line), or a bare `TEMPLATE` (a line per row). A command gives its
//! rows as JSON objects, its default columns as a template, and its column names; this module
//! does the rest, the same way for every command and front end.

use serde_json::Value;

use super::tabwriter::{self, Style};
use super::template::{Row, Template, TemplateError};

/// A parsed `--format`.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    /// A header, then the rows, aligned.
    Table(Template),
    Json,
    /// A line per row.
    Template(Template),
}

impl Format {
    /// Parses `--format` (`s`) for a command whose `table` columns are the template `default`.
    /// As in Docker, a format starting with `table` is a table, surrounding spaces are dropped,
    /// and the two characters `\t` and `\n` stand for a tab and a newline.
    pub fn parse(s: &str, default: &str) -> Result<Format, TemplateError> {
        let t = s.trim_matches(' ');
        if t.is_empty() || t == "table" {
            return Ok(Format::Table(Template::parse(&unescape(default))?));
        }
        if t == "json" {
            return Ok(Format::Json);
        }
        match t.strip_prefix("table") {
            Some(body) => Ok(Format::Table(Template::parse(&unescape(body.trim_matches(' ')))?)),
            None => Ok(Format::Template(Template::parse(&unescape(t))?)),
        }
    }
}

/// The Docker CLI's escapes in a `--format`: `\t` and `\n` written as two characters.
pub fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

/// Renders `rows` as `format` says; `headers` maps each field to its column name.
pub fn list(format: &Format, headers: &[(&str, &str)], rows: &[Row]) -> Result<String, TemplateError> {
    let mut out = String::new();
    match format {
        Format::Json => {
            for r in rows {
                out.push_str(&r.fields.to_string());
                out.push('\n');
            }
        }
        Format::Template(t) => {
            for r in rows {
                out.push_str(&t.execute(r)?);
                out.push('\n');
            }
        }
        Format::Table(t) => {
            out.push_str(&t.execute_header(headers)?);
            out.push('\n');
            for r in rows {
                out.push_str(&t.execute(r)?);
                out.push('\n');
            }
            out = tabwriter::align(&out, Style::DOCKER);
        }
    }
    Ok(out)
}

/// Rows without labels, for [`list`].
pub fn plain_rows(values: &[Value]) -> Vec<Row<'_>> {
    values.iter().map(Row::new).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HEADERS: &[(&str, &str)] = &[("Driver", "DRIVER"), ("Name", "VOLUME NAME"), ("Mountpoint", "MOUNTPOINT")];

    fn render(format: &str, rows: &[Value]) -> String {
        list(&Format::parse(format, "{{.Driver}}\\t{{.Name}}").unwrap(), HEADERS, &plain_rows(rows)).unwrap()
    }

    fn row(name: &str) -> Value {
        json!({"Driver": "local", "Name": name, "Labels": "a=b", "Mountpoint": "/m"})
    }

    #[test]
    fn tables_json_and_templates() {
        assert_eq!(render("table", &[row("p_data"), row("p_other")]), "DRIVER    VOLUME NAME\nlocal     p_data\nlocal     p_other\n");
        assert_eq!(render("", &[]), "DRIVER    VOLUME NAME\n");
        assert_eq!(render("table {{.Name}}\\t{{.Mountpoint}}", &[row("p_data")]), "VOLUME NAME   MOUNTPOINT\np_data        /m\n");
        assert_eq!(render("table {{.Name}}\t{{.Mountpoint}} ", &[row("p_data")]), "VOLUME NAME   MOUNTPOINT\np_data        /m\n");
        assert_eq!(render("{{.Name}} {{.Labels}}", &[row("p_data")]), "p_data a=b\n");
        let out = render("json", &[row("p_data")]);
        assert_eq!(serde_json::from_str::<Value>(out.trim()).unwrap()["Name"], "p_data");
        assert_eq!(render("{{json .}}", &[json!({"b": 1, "a": 2})]), "{\"a\":2,\"b\":1}\n");
        // A table template with a newline: Go's column blocks.
        assert_eq!(
            render("table {{.Name}}\\n{{.Driver}}\\t{{.Mountpoint}}", &[row("p")]),
            "VOLUME NAME\nDRIVER    MOUNTPOINT\np\nlocal     /m\n"
        );
        assert!(Format::parse("{{.Name", "").is_err());
        assert_eq!(Format::parse(" json ", "").unwrap(), Format::Json);
    }
}
