use super::*;

#[test]
fn copy_states_read_as_the_api_words() {
    let words: Vec<&str> = [
        CopyState::Complete,
        CopyState::Uploading,
        CopyState::Waiting,
        CopyState::Unreachable,
    ]
    .iter()
    .map(|state| state.as_str())
    .collect();
    assert_eq!(words, ["complete", "uploading", "waiting", "unreachable"]);
}
