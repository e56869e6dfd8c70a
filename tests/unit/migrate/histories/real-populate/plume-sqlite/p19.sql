-- Post covers (children of medias), before the rebuilds that redeclare them.
UPDATE posts SET cover_id = id WHERE id <= 10;
