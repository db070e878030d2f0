fn main() {
    let args: Vec<String> = std::env::args().collect();
    if piarchive::firmware::is_init_invocation(&args) {
        match piarchive::firmware::run_init() {
            Ok(never) => match never {},
            Err(err) => {
                eprintln!("piarchive init: {err:#}");
                std::process::exit(1);
            }
        }
    }
}
