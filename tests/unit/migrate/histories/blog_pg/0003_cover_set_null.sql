-- hoist:up
-- Deleting a media no longer fails on the posts that show it.
ALTER TABLE posts DROP CONSTRAINT posts_cover_id_fkey;
ALTER TABLE posts ADD CONSTRAINT posts_cover_id_fkey FOREIGN KEY (cover_id) REFERENCES medias (id) ON DELETE SET NULL;
-- hoist:down
ALTER TABLE posts DROP CONSTRAINT posts_cover_id_fkey;
ALTER TABLE posts ADD CONSTRAINT posts_cover_id_fkey FOREIGN KEY (cover_id) REFERENCES medias (id);
