/* schema: the tables of the tracker's database, one migration list for
 * every module that keeps state in it (registry.c's users, mailbox.c's
 * mail and receipts), applied by db_open. */
#ifndef PARLEY_SCHEMA_H
#define PARLEY_SCHEMA_H

#include "db.h"

extern const db_schema tracker_schema;

#endif
