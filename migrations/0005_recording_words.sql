-- Words seen in each recording (output and typed input), so a search opens
-- only the recordings that contain every word of the pattern.
CREATE TABLE recording_words (
    word TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (word, name)
);
CREATE INDEX recording_words_name ON recording_words (name);
