use std::fs::File;
use std::io::BufReader;
use std::time::Instant;
use telegram_export::lexer::{JsonLexer, TokenKind};
use telegram_export::{write_synthetic_export, ExportEvent, JsonExportReader, ParseOptions};

fn main() {
    let path = std::env::temp_dir().join("stages.json");
    write_synthetic_export(File::create(&path).unwrap(), 1, 300_000, 42).unwrap();
    let size = std::fs::metadata(&path).unwrap().len() as f64 / 1e6;
    let open = || BufReader::with_capacity(256 * 1024, File::open(&path).unwrap());

    let mode = std::env::args().nth(1).unwrap_or_default();
    if mode == "full" {
        let t = Instant::now();
        let mut r = JsonExportReader::new(open(), "x", ParseOptions::default());
        let mut c = 0;
        while let Some(e) = r.next_event().unwrap() { if let ExportEvent::Message(_) = e { c += 1; } }
        println!("full {c}: {:.0} MB/s", size / t.elapsed().as_secs_f64());
        std::fs::remove_file(&path).unwrap();
        return;
    }
    let t = Instant::now();
    let mut lexer = JsonLexer::new(open(), "x");
    let mut n = 0u64;
    loop {
        let tok = lexer.next_token().unwrap();
        if tok.kind == TokenKind::EndOfInput {
            break;
        }
        n += 1;
    }
    println!("tokens {n}: {:.0} MB/s", size / t.elapsed().as_secs_f64());

    let t = Instant::now();
    let mut lexer = JsonLexer::new(open(), "x");
    let tok = lexer.next_token().unwrap();
    lexer.skip_value(tok).unwrap();
    println!("skip: {:.0} MB/s", size / t.elapsed().as_secs_f64());

    let t = Instant::now();
    let mut lexer = JsonLexer::new(open(), "x");
    let tok = lexer.next_token().unwrap();
    let v = lexer.read_value(tok).unwrap();
    println!(
        "read whole value: {:.0} MB/s",
        size / t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let mut total = 0;
    for m in v["messages"].as_array().unwrap() {
        total += serde_json::to_string(m).unwrap().len();
    }
    println!(
        "serialize raw_json: {:.0} MB/s ({total})",
        size / t.elapsed().as_secs_f64()
    );
    drop(v);

    let t = Instant::now();
    let mut r = JsonExportReader::new(open(), "x", ParseOptions::default());
    let mut c = 0;
    while let Some(e) = r.next_event().unwrap() {
        if let ExportEvent::Message(_) = e {
            c += 1;
        }
    }
    println!("full {c}: {:.0} MB/s", size / t.elapsed().as_secs_f64());
    std::fs::remove_file(&path).unwrap();
}
