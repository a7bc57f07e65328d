//! Load a CRS checkout (`crs_check <setup.conf> <rules dir>`) and check that attacks are
//! blocked and ordinary requests pass: a compatibility check for other CRS versions.
use weir_plugin_waf::Waf;
use weir_sdk::testing::{self, MockRequest};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (setup, rules) = (&args[1], &args[2]);
    let config = serde_json::json!({ "rules": [setup, format!("{rules}/*.conf")] });
    let waf = match testing::init::<Waf>(&config.to_string()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("refused: {e}");
            std::process::exit(1);
        }
    };
    println!("{} rules loaded", waf.rules().rules);
    let mut bad = 0;
    for (uri, want) in [
        ("/search?q=1%27%20OR%20%271%27%3D%271", 403),
        ("/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", 403),
        ("/f?name=../../../../etc/passwd", 403),
        ("/run?cmd=%3Bcat%20/etc/shadow", 403),
        ("/products?id=42&sort=price&page=2&q=blue+shoes", 0),
        ("/caf%C3%A9/menu?lang=fr", 0),
    ] {
        let mut req = MockRequest::get(uri)
            .with_raw_path_and_query(uri)
            .with_header("host", "shop.example")
            .with_header("user-agent", "Mozilla/5.0 (X11; Linux x86_64)")
            .with_header("accept", "text/html");
        let got = testing::on_request(&waf, &mut req)
            .response()
            .map_or(0, |r| r.status);
        println!("{got} {uri} {:?}", req.context.get("waf.rules"));
        bad += usize::from(got != want);
    }
    std::process::exit(i32::from(bad > 0));
}
