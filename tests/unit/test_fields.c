/* Header rules (add / set / remove) applied to a field list: fields_apply, fields_rule_drops. */
#include "check.h"
#include "config/config.h"
#include "http/fields.h"
#include "http/request.h"

#define F(n, v) ((struct http_field){(n), (v), sizeof(n) - 1, sizeof(v) - 1})
#define OP(n, v) ((struct cfg_header_op){(char *)(n), (char *)(v), sizeof(n) - 1, sizeof(v) - 1})

static int field_is(const struct http_field *f, const char *name, const char *value)
{
    return f->name_len == strlen(name) && memcmp(f->name, name, f->name_len) == 0 &&
           f->value_len == strlen(value) && memcmp(f->value, value, f->value_len) == 0;
}

static int drops(const struct cfg_header_rules *r, const char *name)
{
    return fields_rule_drops(r, name, strlen(name));
}

static void test_no_rules(void)
{
    const struct http_field in[] = {F("Host", "a"), F("Accept", "*/*"), F("Accept", "x")};
    struct http_field out[3];
    /* NULL rules: a plain copy, order and duplicates kept */
    CHECK_EQ_INT(fields_apply(in, 3, NULL, out, 3), 3);
    CHECK(field_is(&out[0], "Host", "a"));
    CHECK(field_is(&out[1], "Accept", "*/*"));
    CHECK(field_is(&out[2], "Accept", "x"));
    CHECK(out[0].name == in[0].name); /* the values are not copied: the same bytes */
    /* exactly full is fine, one short is not */
    CHECK_EQ_INT(fields_apply(in, 3, NULL, out, 2), -1);
    CHECK_EQ_INT(fields_apply(in, 0, NULL, out, 0), 0);
    CHECK(!drops(NULL, "Host"));
    /* empty rules behave as none */
    const struct cfg_header_rules empty = {0};
    CHECK_EQ_INT(fields_apply(in, 3, &empty, out, 3), 3);
    CHECK(!drops(&empty, "Host"));
}

static void test_remove(void)
{
    char *remove[] = {"x-secret", "Server"};
    const struct cfg_header_rules r = {.remove = remove, .nremove = 2};
    const struct http_field in[] = {F("X-Secret", "1"), F("Accept", "a"), F("SERVER", "s"),
                                    F("x-secret", "2"), F("X-Secret-Not", "k")};
    struct http_field out[5];
    /* every field of a removed name goes, case-insensitively; a longer name stays */
    CHECK_EQ_INT(fields_apply(in, 5, &r, out, 5), 2);
    CHECK(field_is(&out[0], "Accept", "a"));
    CHECK(field_is(&out[1], "X-Secret-Not", "k"));
    CHECK(drops(&r, "X-SECRET"));
    CHECK(drops(&r, "server"));
    CHECK(!drops(&r, "x-secre"));
    CHECK(!drops(&r, "x-secrets"));
    CHECK(!drops(&r, ""));
    /* removed fields need no room in out */
    CHECK_EQ_INT(fields_apply(in, 5, &r, out, 2), 2);
    CHECK_EQ_INT(fields_apply(in, 5, &r, out, 1), -1);
}

static void test_set_replaces(void)
{
    struct cfg_header_op set[] = {OP("X-Frame-Options", "DENY")};
    const struct cfg_header_rules r = {.set = set, .nset = 1};
    const struct http_field in[] = {F("x-frame-options", "SAMEORIGIN"), F("Accept", "a"),
                                    F("X-FRAME-OPTIONS", "ALLOW")};
    struct http_field out[4];
    /* every incoming field of the name is replaced by one, appended after the kept ones, with
     * the name as configured */
    CHECK_EQ_INT(fields_apply(in, 3, &r, out, 4), 2);
    CHECK(field_is(&out[0], "Accept", "a"));
    CHECK(field_is(&out[1], "X-Frame-Options", "DENY"));
    CHECK(drops(&r, "x-frame-options"));
    /* absent in the input: added */
    CHECK_EQ_INT(fields_apply(in + 1, 1, &r, out, 4), 2);
    CHECK(field_is(&out[1], "X-Frame-Options", "DENY"));
    /* room for the kept fields but not for the set one */
    CHECK_EQ_INT(fields_apply(in, 3, &r, out, 1), -1);
}

static void test_add_keeps(void)
{
    struct cfg_header_op add[] = {OP("Via", "1.1 gatehouse"), OP("X-Empty", "")};
    const struct cfg_header_rules r = {.add = add, .nadd = 2};
    const struct http_field in[] = {F("Via", "1.0 other")};
    struct http_field out[3];
    /* add never drops: the client's Via stays, ours follows; an empty value is a value */
    CHECK_EQ_INT(fields_apply(in, 1, &r, out, 3), 3);
    CHECK(field_is(&out[0], "Via", "1.0 other"));
    CHECK(field_is(&out[1], "Via", "1.1 gatehouse"));
    CHECK(field_is(&out[2], "X-Empty", ""));
    CHECK(!drops(&r, "via"));
    CHECK_EQ_INT(fields_apply(in, 1, &r, out, 2), -1);
}

static void test_all_rules_order(void)
{
    char *remove[] = {"cookie"};
    struct cfg_header_op set[] = {OP("X-A", "set1"), OP("X-B", "set2")};
    struct cfg_header_op add[] = {OP("X-A", "added")};
    const struct cfg_header_rules r = {
        .add = add, .nadd = 1, .set = set, .nset = 2, .remove = remove, .nremove = 1};
    const struct http_field in[] = {F("Cookie", "c=1"), F("x-a", "client"), F("Keep", "k"),
                                    F("x-b", "client")};
    struct http_field out[8];
    /* kept input first, then every set field in rule order, then every add field */
    CHECK_EQ_INT(fields_apply(in, 4, &r, out, 8), 4);
    CHECK(field_is(&out[0], "Keep", "k"));
    CHECK(field_is(&out[1], "X-A", "set1"));
    CHECK(field_is(&out[2], "X-B", "set2"));
    CHECK(field_is(&out[3], "X-A", "added"));
    CHECK(drops(&r, "Cookie") && drops(&r, "x-b") && !drops(&r, "keep"));
    CHECK_EQ_INT(fields_apply(in, 4, &r, out, 4), 4);
    CHECK_EQ_INT(fields_apply(in, 4, &r, out, 3), -1);
    /* no input at all: the rules' own fields alone */
    CHECK_EQ_INT(fields_apply(NULL, 0, &r, out, 8), 3);
    CHECK(field_is(&out[0], "X-A", "set1"));
}

static void test_names_with_nul_length(void)
{
    /* names compare by length, not by NUL: a name that is a prefix of a rule does not match */
    char *remove[] = {"x-forwarded-for"};
    const struct cfg_header_rules r = {.remove = remove, .nremove = 1};
    const char name[] = "x-forwarded-for-extra";
    CHECK(!fields_rule_drops(&r, name, sizeof(name) - 1));
    CHECK(fields_rule_drops(&r, name, 15));
    CHECK(!fields_rule_drops(&r, name, 14));
}

int main(void)
{
    test_no_rules();
    test_remove();
    test_set_replaces();
    test_add_keeps();
    test_all_rules_order();
    test_names_with_nul_length();
    return check_done("fields");
}
