"""test_tracker_lookalike: look-alike names (docs/PROTOCOL.md, "Usernames"),
against the real tracker with raw protocol clients and a real peer: a new
name whose TR39 skeleton matches a name of another key is refused with
name_confusable naming that name, its owner re-registers freely; names
mixing scripts as TR39's moderately restrictive level forbids are
bad_name, while Japanese (Latin, Han, kana) and any one script pass;
zero-width and bidi controls are refused as invisible characters, not as
whitespace; skeletons are filled in for a database whose rows lack them."""
import re

import runner
from procs import Peer, Tracker, fail, sqlite
from sodium import Key
from wire import Raw, registered_client

CYR_A = '\u0430'   # Cyrillic small a: looks like Latin a


def refused(t, name, code, *words, key=None):
    """Registering name (with a fresh key) is refused with code; the msg
    holds every word; the connection is closed.  Returns the msg."""
    c = Raw(t.addr, label='register %r' % name)
    r = c.register(name, key=key)
    if r.get('t') != 'error' or r.get('code') != code:
        fail('registering %r answered %r, want error %s' % (name, r, code))
    for w in words:
        if w not in r.get('msg', ''):
            fail('the %s error for %r should say %r: %r' % (code, name, w, r.get('msg')))
    c.expect_closed()
    return r['msg']


def test_cyrillic_alice_refused_owner_reregisters():
    """The issue's case: Cyrillic "аlice" (U+0430) beside "alice"."""
    t = Tracker()
    key = Key()
    owner = registered_client(t, 'alice', key)
    for name in (CYR_A + 'lice', CYR_A.upper() + 'LICE', 'alic\u0435'):
        msg = refused(t, name, 'name_confusable', 'looks like alice')
        if name not in msg:
            fail('the message should name the refused name %r: %r' % (name, msg))
    refused(t, 'ALICE', 'name_taken')   # the same name is still name_taken
    # The owner re-registers its own name, in any spelling, as often as it
    # likes: the check is for names of other keys.
    again = Raw(t.addr, label='alice again')
    r = again.register('Alice', key=key)
    if r.get('t') != 'registered' or r.get('name') != 'alice':
        fail('the owner registering Alice again got %r' % r)
    owner.expect_error('replaced')
    look = again.lookup(CYR_A + 'lice')
    if look.get('t') != 'error' or look.get('code') != 'not_found':
        fail('lookup of the refused look-alike answered %r' % look)
    if again.list_all() != ['alice']:
        fail('list shows %r, want only alice' % again.list_all())
    # Without alice, the same name mixes scripts: refused all the same.
    t2 = Tracker(label='tracker without alice')
    refused(t2, CYR_A + 'lice', 'bad_name', 'mixes scripts')
    t2.stop()
    t.stop()


def test_lookalike_of_another_key_refused():
    t = Tracker()
    ace = registered_client(t, 'Ace')
    scope = registered_client(t, 'scope')
    registered_client(t, 'paypal')
    registered_client(t, 'google')
    registered_client(t, 'bill')
    refused(t, 'p' + CYR_A + 'yp' + CYR_A + 'l', 'name_confusable', 'looks like paypal')
    # All Cyrillic, so no script rule refuses them: а с е, ѕ с о р е.
    refused(t, '\u0430\u0441\u0435', 'name_confusable', 'looks like Ace')
    refused(t, '\u0455\u0441\u043e\u0440\u0435', 'name_confusable', 'looks like scope')
    # Latin and digits only (ASCII passes every script rule).
    refused(t, 'paypa1', 'name_confusable', 'looks like paypal')
    refused(t, 'g00gle', 'name_confusable', 'looks like google')
    refused(t, 'GOOG1E', 'name_confusable', 'looks like google')
    refused(t, 'bi11', 'name_confusable', 'looks like bill')
    # A key may take a look-alike of its own name.
    r = Raw(t.addr, label='scope owner, look-alike').register('5cope', key=scope.key)
    if r.get('t') == 'error' and r.get('code') == 'name_confusable':
        fail('a key was refused a look-alike of its own name: %r' % r)
    look = ace.lookup('\u0430\u0441\u0435')
    if look.get('code') != 'not_found':
        fail('the refused look-alike got bound: %r' % look)
    # Names that only share letters are fine.
    registered_client(t, 'alice')
    registered_client(t, 'alicf')
    registered_client(t, 'paypal2')
    t.stop()


def test_lookalike_message_reaches_the_peer():
    """A real peer refused for a look-alike says so once and stops, as for
    a taken name: no reconnecting forever."""
    t = Tracker()
    first = Peer('scope', t.addr)
    first.registered()
    second = Peer('\u0455\u0441\u043e\u0440\u0435', t.addr, label='peer look-alike')
    second.expect(r'^error: .*refused the name .*looks like scope', 15)
    second.assert_none(r'^registered ')
    if second.proc.wait_exit(15) == 0:
        fail('the refused peer exited 0')
    first.quit()
    t.stop()


def test_mixed_scripts_refused():
    t = Tracker()
    for what, name in [
        ('Latin with Cyrillic', CYR_A + 'lice'),
        ('Latin with Cyrillic at the end', 'alic\u0435'),
        ('Latin with Greek', '\u03a9mega'),
        ('Cyrillic with Greek', '\u0441\u03b5\u0440'),
        ('Hebrew with Arabic', '\u05d0\u0628'),
    ]:
        msg = refused(t, name, 'bad_name', 'mixes scripts')
        if not re.search(r'one script', msg):
            fail('the message for %s should say what is allowed: %r' % (what, msg))
    refused(t, 'a1\u0663', 'bad_name', 'digits')                # ASCII 1, Arabic-Indic 3
    refused(t, 'e\u0301\u0301', 'bad_name', 'combining mark')   # the same accent twice
    t.stop()


def test_one_script_and_japanese_allowed():
    t = Tracker()
    watcher = registered_client(t, 'watcher')
    ok = [
        'taro\u305f\u308d\u3046\u5c71\u7530',   # Latin, Hiragana, Han: Japanese
        '\u5c71\u7530\u30bf\u30ed\u30a6',         # Han, Katakana
        'kim\uae40',                              # Latin, Hangul
        '\u0441\u0435\u0440\u0433\u0435\u0439',   # сергей, Cyrillic alone
        '\u03b5\u03bb\u03ad\u03bd\u03b7',         # ελένη, Greek alone
        '\u00c9mile',                             # Latin with an accent
        'bob_42',
        '\U0001f600\U0001f600',                   # emoji: Common, goes with anything
    ]
    for name in ok:
        c = Raw(t.addr, label='register %r' % name)
        r = c.register(name)
        if r.get('t') != 'registered':
            fail('registering %r answered %r, want registered' % (name, r))
    users = watcher.list_all()
    for name in ok:
        if name not in users:
            fail('%r registered but is not listed: %r' % (name, users))
    t.stop()


def test_invisible_characters_named_as_such():
    t = Tracker()
    good = registered_client(t, 'good')
    for what, name in [('zero-width joiner', 'ad\u200dmin'),
                       ('right-to-left override', 'admin\u202eexe'),
                       ('zero-width space', 'ali\u200bce'),
                       ('left-to-right mark', '\u200ealice')]:
        msg = refused(t, name, 'bad_name', 'an invisible or formatting character')
        if 'whitespace' in msg.replace('without spaces', ''):
            fail('a %s was called whitespace: %r' % (what, msg))
        # A lookup says the same, and the connection stays.
        rid = good.next_id
        f = good.lookup(name)
        if f.get('code') != 'bad_name' or f.get('id') != rid:
            fail('lookup of a name with a %s answered %r' % (what, f))
    # Real whitespace is still whitespace.
    refused(t, 'ali\u00a0ce', 'bad_name', 'whitespace')
    t.stop()


def test_skeletons_filled_in_for_old_rows():
    """Rows without a skeleton (a database from before migration 3, here
    simulated by clearing them) get one when the tracker starts, so a
    look-alike of a name bound long ago is refused too."""
    t = Tracker()
    registered_client(t, 'ace').close()
    t.stop()
    sqlite(t.db, "UPDATE users SET skeleton = NULL; DELETE FROM meta")
    t.restart()
    t.proc.wait_stderr(r'computed the look-alike skeletons of 1 name \(ICU ', timeout=10)
    refused(t, '\u0430\u0441\u0435', 'name_confusable', 'looks like ace')
    rows = sqlite(t.db, "SELECT folded, skeleton FROM users")
    if rows != ['ace|ace']:
        fail('users after the fill: %r' % rows)
    t.stop()


if __name__ == '__main__':
    runner.main(globals())
