"""Chinese first, English on request: the English text is the key, this table its Chinese."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("zh", "en")

ZH: dict[str, str] = {
    "Pledge registry": "环境权益质押登记簿",
    "Sign in": "登录",
    "Sign out": "退出",
    "Username": "用户名",
    "Password": "密码",
    "Wrong username or password.": "用户名或密码错误。",
    "Your session has ended; please sign in again.": "会话已结束，请重新登录。",
    "Queue": "待办队列",
    "Pledges": "质押",
    "Alerts": "预警",
    "Search": "查询",
    "Pending instructions, oldest first": "待处理指令（按时间先后）",
    "No instruction is waiting.": "暂无待处理指令。",
    "Instruction": "指令",
    "Pledge": "质押",
    "Pledgee": "质权人",
    "Pledgor": "出质人",
    "Borrower": "借款人",
    "Account": "账户",
    "Asked": "申请",
    "Held for this request": "本申请已锁定",
    "Available": "可用",
    "Pledgor's holdings": "出质人持仓",
    "Held for other requests": "其他申请锁定",
    "Frozen (pledged)": "已冻结（质押中）",
    "Requested": "申请时间",
    "Lapses": "失效时间",
    "Confirm": "确认",
    "Reject": "驳回",
    "Reason": "理由",
    "A reason is required to reject.": "驳回须填写理由。",
    "The text must not contain control or bidirectional-override characters.": "文字不得含有控制字符或双向覆盖字符。",
    "Reviewed by": "初审",
    "needs a second, different operator": "需另一名操作员复核",
    "register": "质押登记",
    "top_up": "补充质押",
    "release": "解除质押",
    "dispose": "处置",
    "pending": "待确认",
    "active": "生效",
    "rejected": "已驳回",
    "cancelled": "已撤回",
    "expired": "已失效",
    "released": "已解除",
    "disposed": "已处置",
    "confirmed": "已确认",
    "valid": "有效",
    "superseded": "已被取代",
    "revoked": "已撤销",
    "ok": "正常",
    "warning": "预警",
    "disposal": "处置",
    "all": "全部",
    "new": "新登记",
    "Registration no.": "登记编号",
    "Status": "状态",
    "Credit type": "品种",
    "Quantity": "数量",
    "Principal": "本金",
    "Outstanding": "未偿本金",
    "Maturity": "到期日",
    "Coverage": "覆盖倍数",
    "Certificate": "证明",
    "Download": "下载",
    "No pledge to show.": "暂无质押。",
    "Loan contract no.": "借款合同编号",
    "Term": "期限",
    "Terms": "条件",
    "Max. pledge rate": "质押率上限",
    "Warning line": "预警线",
    "Disposal line": "处置线",
    "Valuation method": "估值方法",
    "Pledged blocks": "质物序列号区段",
    "Project": "项目",
    "Vintage": "年份",
    "First serial": "起始序列号",
    "Last serial": "截止序列号",
    "Instructions": "指令记录",
    "Type": "类型",
    "Decided by": "处理人",
    "Decided": "处理时间",
    "Certificate versions": "证明版本",
    "Number": "编号",
    "Version": "版本",
    "Issued": "出具时间",
    "Valuation history": "估值记录",
    "Coverage ratio over time": "覆盖倍数走势",
    "Price": "参考价",
    "Collateral value": "质物价值",
    "Level": "水平",
    "No valuation yet.": "尚无估值。",
    "Kind": "类型",
    "Raised": "触发时间",
    "Acknowledge": "确认知悉",
    "Acknowledged": "已知悉",
    "open": "未解除",
    "cleared": "已解除",
    "No open alert.": "暂无预警。",
    "margin_warning": "跌破预警线",
    "margin_disposal": "跌破处置线",
    "maturity_upcoming": "即将到期",
    "matured_unreleased": "到期未解押",
    "price_stale": "价格陈旧",
    # The trail's words (event kinds, the actor's role when no person is named).
    "event:issue": "签发",
    "event:transfer": "转让",
    "event:retire": "注销",
    "event:hold": "锁定",
    "event:release_hold": "解除锁定",
    "event:freeze": "冻结",
    "event:unfreeze": "解冻",
    "event:dispose": "处置划转",
    "role:exchange": "交易所",
    "role:bank": "银行",
    "role:holder": "持有人",
    "role:auditor": "审计",
    "role:system": "登记系统",
    "Open": "查看",
    "Closed: nothing is pledged any more.": "已结束：不再有质押中的单位。",
    "Older valuations": "更早的估值",
    "Registration, certificate, contract or account no., party name, credit code or serial": (
        "登记编号、证明编号、合同编号、账户号、主体名称、统一社会信用代码或序列号"
    ),
    "Results": "结果",
    "Nothing found.": "未找到。",
    "Unit history": "单位流转记录",
    "History of unit": "单位记录",
    "When": "时间",
    "Event": "事件",
    "From": "自",
    "To": "至",
    "Operator": "操作员",
    "Confirmed.": "已确认。",
    "Rejected.": "已驳回。",
    "Reviewed: a second operator must now confirm.": "已初审：须由另一名操作员复核确认。",
    "Alert acknowledged.": "预警已知悉。",
    "Not found": "未找到",
    "Something went wrong": "出错了",
    "Back": "返回",
    "Signed in as": "当前用户",
    "Exchange back office": "交易所业务后台",
    "Bank": "银行",
    "Holder": "持有人",
    "Auditor": "审计",
    "Held": "锁定",
    "Frozen": "冻结",
    "Details": "详情",
    "Too many attempts; try again later.": "尝试次数过多，请稍后再试。",
    (
        "A pledge is registered on the joint application of the bank and the pledgor: "
        "nothing is held or sent to the exchange until you agree."
    ): "质押登记由质权人（银行）与出质人共同申请：在您同意之前，不会锁定任何单位，也不会提交交易所。",
    "Asked by": "申请方",
    "At today's price": "按今日参考价",
    "Awaiting your consent": "待我同意",
    "Buyer's account no. (auction; empty: the bank's account)": "买受人账户号（拍卖；留空则划入银行账户）",
    "Confirm these terms": "确认以上处置条件",
    "Consent": "同意",
    "Consented by": "同意人",
    "Decline": "拒绝",
    "No price: cannot be valued": "无成交价，无法估值",
    "No request is waiting for your consent.": "暂无待您同意的申请。",
    "Outside the lender's terms at today's price: cannot be confirmed": "按今日参考价已超出贷款条件，不能确认",
    "Pledge rate": "质押率",
    "Price per unit": "单价",
    "Proceeds": "处置价款",
    "Review these terms": "提交处置条件初审",
    "Reviewed terms": "初审处置条件",
    "Units go to": "划转至",
    "Units went to": "单位去向",
    "Withdraw": "撤回",
    "You reviewed these terms: another operator must confirm them.": "您已初审以上条件，须由另一名操作员确认。",
    "Consented: the request now goes to the exchange.": "已同意：申请已提交交易所。",
    "Declined.": "已拒绝。",
    "Withdrawn.": "已撤回。",
    "A reason is required to decline.": "拒绝须填写理由。",
    "Enter an amount such as 68.50.": "请输入金额，例如 68.50。",
    "awaiting_consent": "待对方同意",
    "declined": "已拒绝",
    # Domain errors' messages (registry: each error class's `message`), as the console shows them.
    "The request could not be completed.": "请求未能完成。",
    "Not found.": "未找到。",
    "You may not do this.": "您无权进行此操作。",
    "This input is not valid: {field}.": "输入有误：{field}。",
    "This is not allowed in the current state.": "当前状态下不允许此操作。",
    "This already exists.": "已存在。",
    "The registry is busy; try again in a moment.": "系统繁忙，请稍后再试。",
    "Not enough units: {available} {unit_status} {credit_type} units, {requested} asked.": (
        "单位不足：{credit_type} {unit_status}单位 {available}，申请 {requested}。"
    ),
    "The account does not hold these {credit_type} serials as {unit_status}.": (
        "该账户未以{unit_status}状态持有这些 {credit_type} 序列号。"
    ),
    "The account is closed.": "该账户已关闭。",
    "{credit_type} has {left} serial numbers left, {requested} asked.": (
        "{credit_type} 剩余序列号 {left} 个，申请 {requested} 个。"
    ),
    "Four eyes: {reviewed_by} reviewed this disposal; another operator must confirm it.": (
        "四眼原则：{reviewed_by} 已初审该处置，须由另一名操作员确认。"
    ),
    "The pledge rate {pledge_rate} is above the lender's maximum {max_pledge_rate}.": (
        "质押率 {pledge_rate} 高于贷款人的上限 {max_pledge_rate}。"
    ),
    (
        "At today's price the loan is outside the lender's terms: pledge rate {pledge_rate} "
        "(maximum {max_pledge_rate}), coverage {coverage_ratio} (disposal line {disposal_ratio})."
    ): (
        "按今日参考价，贷款已超出贷款条件：质押率 {pledge_rate}（上限 {max_pledge_rate}），"
        "覆盖倍数 {coverage_ratio}（处置线 {disposal_ratio}）。"
    ),
    "This loan contract already has an open pledge.": "该借款合同已有未结束的质押。",
    "This instruction is {instruction_status}.": "该指令{instruction_status}。",
    "This request lapsed at {lapsed_at}.": "该申请已于 {lapsed_at} 失效。",
    "Too many attempts; try again in {retry_after} s.": "尝试次数过多，请 {retry_after} 秒后再试。",
    "Too many reports at once; try again in {retry_after} s.": "同时生成的报表过多，请 {retry_after} 秒后再试。",
    "This request was already sent with other contents.": "该请求已以不同内容提交过。",
    "The form did not carry this session's token; reload the page and try again.": (
        "表单缺少本次会话的令牌，请刷新页面后重试。"
    ),
    "Sign in first.": "请先登录。",
    "available": "可用",
    "held": "锁定",
    "frozen": "冻结",
    "retired": "已注销",
}


# Codes shown with a prefix in the pages (event kinds, roles): their English without the prefix.
_PREFIXES = ("event:", "role:")


def _english(text: str) -> str:
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :].replace("_", " ")
    return text


def translator(lang: str) -> Callable[[str], str]:
    if lang == "zh":
        return lambda text: ZH.get(text, _english(text))
    return _english
