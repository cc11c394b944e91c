//! The English set is complete and matches its manifest; site folders are
//! checked clip by clip.

use std::collections::BTreeSet;
use std::fs;

use super::*;

const EN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/sip-profiles/prompts/en");

/// The clip names the manifest lists.
fn manifest_names() -> BTreeSet<String> {
    let text = fs::read_to_string(format!("{EN_DIR}/manifest.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, words) = l.split_once('\t').expect("name<TAB>words");
            assert!(!words.trim().is_empty(), "{name} says nothing");
            name.to_owned()
        })
        .collect()
}

fn all_names() -> BTreeSet<String> {
    Clip::all().into_iter().filter_map(Clip::name).collect()
}

#[test]
fn every_clip_is_in_the_manifest_the_folder_and_the_binary() {
    let names = all_names();
    assert_eq!(manifest_names(), names, "manifest.tsv and Clip::all differ");
    let files: BTreeSet<String> = fs::read_dir(EN_DIR)
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == PROMPT_EXTENSION)
                .then(|| path.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(
        files, names,
        "the folder's .opus files and Clip::all differ"
    );
    let built_in: BTreeSet<String> = BUILT_IN_EN.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(built_in, names, "the compiled-in set and Clip::all differ");
}

#[test]
fn the_built_in_set_decodes_and_stays_small() {
    let prompts = Prompts::built_in();
    prompts.check().unwrap();
    let bytes: usize = BUILT_IN_EN.iter().map(|(_, b)| b.len()).sum();
    assert!(bytes < 400_000, "{bytes} bytes of prompts");
}

#[test]
fn clips_are_speech_at_the_call_rate() {
    let prompts = Prompts::built_in();
    let wide = prompts
        .clip(Clip::Phrase(super::super::clip::Phrase::Goodbye), 16_000)
        .unwrap();
    let narrow = prompts
        .clip(Clip::Phrase(super::super::clip::Phrase::Goodbye), 8_000)
        .unwrap();
    // "Goodbye." lasts well under two seconds and is not silence.
    assert!((8_000..32_000).contains(&wide.len()), "{}", wide.len());
    assert!(
        narrow.len().abs_diff(wide.len() / 2) <= 2,
        "{} vs {}",
        narrow.len(),
        wide.len()
    );
    let peak = wide.iter().map(|s| s.unsigned_abs()).max().unwrap();
    assert!(peak > 8_000, "peak {peak}");
    // A second request is served from the cache: the same buffer.
    let again = prompts
        .clip(Clip::Phrase(super::super::clip::Phrase::Goodbye), 16_000)
        .unwrap();
    assert!(Arc::ptr_eq(&wide, &again));
}

#[test]
fn a_sentence_is_its_clips_in_order_with_pauses_as_silence() {
    let prompts = Prompts::built_in();
    let one = Clip::Number(super::super::clip::NumberWord::new(1).unwrap());
    let word = prompts.clip(one, 8_000).unwrap();
    let pcm = prompts.render(&[one, Clip::Pause, one], 8_000).unwrap();
    let pause = (PAUSE_MS * 8) as usize;
    assert_eq!(pcm.len(), 2 * word.len() + pause);
    assert_eq!(&pcm[..word.len()], &word[..]);
    assert!(pcm[word.len()..word.len() + pause].iter().all(|&s| s == 0));
    assert_eq!(&pcm[word.len() + pause..], &word[..]);
}

#[test]
fn a_site_folder_is_checked_clip_by_clip() {
    let dir = tempfile::tempdir().unwrap();
    let lang = dir.path().join("xx");
    fs::create_dir(&lang).unwrap();
    for (name, bytes) in BUILT_IN_EN {
        fs::write(lang.join(format!("{name}.opus")), bytes).unwrap();
    }
    let config = RetrievalConfig {
        language: "xx".into(),
        prompts_dir: Some(dir.path().to_path_buf()),
        ..RetrievalConfig::default()
    };
    let prompts = Prompts::for_profile(&config).unwrap();
    assert_eq!(prompts.source(), &PromptSource::Folder(lang.clone()));

    fs::remove_file(lang.join("december.opus")).unwrap();
    match Prompts::for_profile(&config) {
        Err(PromptError::Unreadable { clip, path, .. }) => {
            assert_eq!(clip, "december");
            assert_eq!(path, lang.join("december.opus"));
        }
        other => panic!("expected a missing clip, got {other:?}"),
    }
    fs::write(lang.join("december.opus"), b"not audio").unwrap();
    let err = Prompts::for_profile(&config).unwrap_err();
    assert!(matches!(&err, PromptError::Undecodable { clip, .. } if clip == "december"));
    assert!(err.to_string().contains("december.opus"), "{err}");
}

#[test]
fn a_language_that_is_not_built_in_needs_a_folder() {
    let config = RetrievalConfig {
        language: "fr".into(),
        ..RetrievalConfig::default()
    };
    let err = Prompts::for_profile(&config).unwrap_err();
    assert!(matches!(err, PromptError::UnknownLanguage { .. }));
    assert!(err.to_string().contains("retrieval.prompts_dir"), "{err}");
}

#[test]
fn one_set_serves_every_call() {
    fn shared<T: Send + Sync>() {}
    shared::<Prompts>();
}
